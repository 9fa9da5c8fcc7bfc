from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from backend.models import new_public_id
from json import dumps, loads
from tortoise.fields.base import OnDelete
from venues.bookings.models import BookingStatus, MessageStatus, WaitStatus
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('core', '0002_notifications'), ('venues', '0002_books_holdings')]

    initial = True

    operations = [
        ops.CreateModel(
            name='BookableUnit',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('public_id', fields.CharField(default=new_public_id, unique=True, max_length=32)),
                ('venue', fields.ForeignKeyField('venues.Venue', source_field='venue_id', db_constraint=True, to_field='id', related_name='bookable_units', on_delete=OnDelete.CASCADE)),
                ('name', fields.CharField(max_length=64)),
                ('active', fields.BooleanField(default=True)),
                ('slot_minutes', fields.IntField(default=60)),
                ('interval_minutes', fields.IntField(default=30)),
                ('min_minutes', fields.IntField(default=60)),
                ('max_minutes', fields.IntField(default=120)),
                ('buffer_minutes', fields.IntField(default=0)),
                ('opens_days_ahead', fields.IntField(default=7)),
                ('min_notice_minutes', fields.IntField(default=30)),
                ('capacity', fields.IntField(default=1)),
                ('requires_approval', fields.BooleanField(default=False)),
                ('price_text', fields.CharField(default='', max_length=100)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'bookings_unit', 'app': 'bookings', 'unique_together': (('venue', 'name'),), 'pk_attr': 'id', 'table_description': 'A court or room of a venue with its booking rules (minutes unless said otherwise).'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Blackout',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('public_id', fields.CharField(default=new_public_id, unique=True, max_length=32)),
                ('venue', fields.ForeignKeyField('venues.Venue', source_field='venue_id', db_constraint=True, to_field='id', related_name='blackouts', on_delete=OnDelete.CASCADE)),
                ('unit', fields.ForeignKeyField('bookings.BookableUnit', source_field='unit_id', null=True, db_constraint=True, to_field='id', related_name='blackouts', on_delete=OnDelete.CASCADE)),
                ('starts_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('ends_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('reason', fields.CharField(default='', max_length=200)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'bookings_blackout', 'app': 'bookings', 'pk_attr': 'id', 'table_description': 'A period when a unit (or every unit of the venue) cannot be booked.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Booking',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('public_id', fields.CharField(default=new_public_id, unique=True, max_length=32)),
                ('unit', fields.ForeignKeyField('bookings.BookableUnit', source_field='unit_id', db_constraint=True, to_field='id', related_name='bookings', on_delete=OnDelete.CASCADE)),
                ('venue', fields.ForeignKeyField('venues.Venue', source_field='venue_id', db_constraint=True, to_field='id', related_name='bookings', on_delete=OnDelete.CASCADE)),
                ('user', fields.ForeignKeyField('core.User', source_field='user_id', db_constraint=True, to_field='id', related_name='bookings', on_delete=OnDelete.CASCADE)),
                ('start', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=False)),
                ('end', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('party_size', fields.IntField(default=1)),
                ('status', fields.CharEnumField(db_index=True, description='HELD: held\nPENDING_APPROVAL: pending_approval\nCONFIRMED: confirmed\nCHECKED_IN: checked_in\nCOMPLETED: completed\nCANCELLED: cancelled\nCANCELLED_BY_VENUE: cancelled_by_venue\nEXPIRED: expired\nNO_SHOW: no_show\nREJECTED: rejected', enum_type=BookingStatus, max_length=20)),
                ('hold_expires_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('qr_token', fields.CharField(null=True, unique=True, max_length=64)),
                ('reminder_queued', fields.BooleanField(default=False)),
                ('from_waitlist', fields.BooleanField(default=False)),
                ('reason', fields.CharField(default='', max_length=200)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('confirmed_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('checked_in_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('ended_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'bookings_booking', 'app': 'bookings', 'pk_attr': 'id', 'table_description': "One resident's booking of a unit from start to end (the buffer follows the end)."},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='OutboxMessage',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('user', fields.ForeignKeyField('core.User', source_field='user_id', db_constraint=True, to_field='id', related_name='outbox_messages', on_delete=OnDelete.CASCADE)),
                ('kind', fields.CharField(max_length=40)),
                ('openid', fields.CharField(max_length=128)),
                ('template_id', fields.CharField(max_length=100)),
                ('page', fields.CharField(default='', max_length=200)),
                ('data', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('dedupe_key', fields.CharField(unique=True, max_length=160)),
                ('status', fields.CharEnumField(default=MessageStatus.PENDING, description='PENDING: pending\nSENDING: sending\nSENT: sent\nFAILED: failed', enum_type=MessageStatus, max_length=12)),
                ('attempts', fields.IntField(default=0)),
                ('next_attempt_at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=False)),
                ('claimed_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('sent_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('last_error', fields.CharField(default='', max_length=200)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'bookings_outbox', 'app': 'bookings', 'pk_attr': 'id', 'table_description': 'A WeChat subscription message to deliver once, claimed before sending.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='ResidentState',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('user', fields.OneToOneField('core.User', source_field='user_id', db_constraint=True, to_field='id', related_name='booking_state', on_delete=OnDelete.CASCADE)),
                ('version', fields.IntField(default=0)),
                ('suspended_until', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'bookings_resident_state', 'app': 'bookings', 'pk_attr': 'id', 'table_description': 'Per resident booking state, locked first in every booking transaction.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='SlotClaim',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('unit', fields.ForeignKeyField('bookings.BookableUnit', source_field='unit_id', db_constraint=True, to_field='id', related_name='claims', on_delete=OnDelete.CASCADE)),
                ('cell_start', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('booking', fields.ForeignKeyField('bookings.Booking', source_field='booking_id', db_constraint=True, to_field='id', related_name='claims', on_delete=OnDelete.CASCADE)),
            ],
            options={'table': 'bookings_claim', 'app': 'bookings', 'unique_together': (('unit', 'cell_start'),), 'pk_attr': 'id', 'table_description': 'One grid cell of a unit claimed by an active booking: the unique pair forbids overlaps.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='VenuePolicy',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('venue', fields.OneToOneField('venues.Venue', source_field='venue_id', db_constraint=True, to_field='id', related_name='booking_policy', on_delete=OnDelete.CASCADE)),
                ('overrides', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'bookings_venue_policy', 'app': 'bookings', 'pk_attr': 'id', 'table_description': 'Booking policy overrides of one venue over the city-wide defaults.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='WaitlistEntry',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('public_id', fields.CharField(default=new_public_id, unique=True, max_length=32)),
                ('unit', fields.ForeignKeyField('bookings.BookableUnit', source_field='unit_id', db_constraint=True, to_field='id', related_name='waitlist', on_delete=OnDelete.CASCADE)),
                ('user', fields.ForeignKeyField('core.User', source_field='user_id', db_constraint=True, to_field='id', related_name='waitlist_entries', on_delete=OnDelete.CASCADE)),
                ('start', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('end', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('status', fields.CharEnumField(default=WaitStatus.WAITING, description='WAITING: waiting\nOFFERED: offered\nACCEPTED: accepted\nEXPIRED: expired\nCANCELLED: cancelled', enum_type=WaitStatus, max_length=12)),
                ('booking', fields.ForeignKeyField('bookings.Booking', source_field='booking_id', null=True, db_constraint=True, to_field='id', related_name='waitlist_entries', on_delete=OnDelete.SET_NULL)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'bookings_waitlist', 'app': 'bookings', 'unique_together': (('unit', 'user', 'start'),), 'pk_attr': 'id', 'table_description': 'A resident waiting for a taken slot, offered it in order of arrival.'},
            bases=['Model'],
        ),
    ]
