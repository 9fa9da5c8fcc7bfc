from tortoise import migrations
from tortoise.migrations import operations as ops
from backend.models import new_public_id
from tortoise.fields.base import OnDelete
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('core', '0001_initial')]

    initial = False

    operations = [
        ops.CreateModel(
            name='Notification',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('public_id', fields.CharField(default=new_public_id, unique=True, max_length=32)),
                ('user', fields.ForeignKeyField('core.User', source_field='user_id', db_constraint=True, to_field='id', related_name='notifications', on_delete=OnDelete.CASCADE)),
                ('kind', fields.CharField(max_length=40)),
                ('title', fields.CharField(max_length=100)),
                ('body', fields.TextField(default='', unique=False)),
                ('link', fields.CharField(default='', max_length=200)),
                ('dedupe_key', fields.CharField(unique=True, max_length=120)),
                ('created_at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=False)),
                ('read_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'core_notification', 'app': 'core', 'pk_attr': 'id', 'table_description': 'A message for one user, listed in the app (delivery channels come later).'},
            bases=['Model'],
        ),
    ]
