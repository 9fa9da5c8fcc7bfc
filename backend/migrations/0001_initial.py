from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from backend.models import Role, new_public_id
from json import dumps, loads
from tortoise.fields.base import OnDelete
from tortoise import fields

class Migration(migrations.Migration):
    initial = True

    operations = [
        ops.CreateModel(
            name='AuditEntry',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=False)),
                ('actor', fields.CharField(default='system', max_length=64)),
                ('actor_role', fields.CharField(default='system', max_length=20)),
                ('action', fields.CharField(db_index=True, max_length=64)),
                ('object_type', fields.CharField(max_length=40)),
                ('object_id', fields.CharField(db_index=True, max_length=64)),
                ('reason', fields.TextField(default='', unique=False)),
                ('detail', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('request_id', fields.CharField(default='', max_length=64)),
            ],
            options={'table': 'core_audit_entry', 'app': 'core', 'pk_attr': 'id', 'table_description': 'Who did what to which object, and why. Never holds personal data in clear.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='JobRun',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('name', fields.CharField(max_length=64)),
                ('scheduled_for', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('runner', fields.CharField(max_length=80)),
                ('started_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('finished_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('status', fields.CharField(default='running', max_length=16)),
                ('error', fields.TextField(default='', unique=False)),
            ],
            options={'table': 'core_job_run', 'app': 'core', 'unique_together': (('name', 'scheduled_for'),), 'pk_attr': 'id', 'table_description': 'One run of a scheduled job: the unique pair makes each scheduled run happen once.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='User',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('public_id', fields.CharField(default=new_public_id, unique=True, max_length=32)),
                ('role', fields.CharEnumField(description='RESIDENT: resident\nSTREET_WORKER: street_worker\nCURATOR: curator\nBUREAU_ADMIN: bureau_admin\nJUDGE: judge\nVENDOR: vendor\nVENUE_OPERATOR: venue_operator', enum_type=Role, max_length=20)),
                ('username', fields.CharField(null=True, unique=True, max_length=64)),
                ('password_hash', fields.CharField(null=True, max_length=200)),
                ('wechat_openid', fields.CharField(null=True, unique=True, max_length=128)),
                ('wechat_unionid', fields.CharField(null=True, db_index=True, max_length=128)),
                ('display_name', fields.CharField(default='', max_length=64)),
                ('street_code', fields.CharField(null=True, max_length=32)),
                ('is_active', fields.BooleanField(default=True)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('last_login_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'core_user', 'app': 'core', 'pk_attr': 'id', 'table_description': 'A person who signs in: a resident through WeChat, staff and vendors with a password.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='ApiKey',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('public_id', fields.CharField(default=new_public_id, unique=True, max_length=32)),
                ('prefix', fields.CharField(max_length=16)),
                ('key_hash', fields.CharField(unique=True, max_length=64)),
                ('name', fields.CharField(default='', max_length=100)),
                ('user', fields.ForeignKeyField('core.User', source_field='user_id', db_constraint=True, to_field='id', related_name='api_keys', on_delete=OnDelete.CASCADE)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('last_used_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('revoked_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'core_api_key', 'app': 'core', 'pk_attr': 'id', 'table_description': 'An operator API key. Only its SHA-256 digest is stored.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='RefreshToken',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('token_hash', fields.CharField(unique=True, max_length=64)),
                ('family', fields.CharField(db_index=True, max_length=32)),
                ('user', fields.ForeignKeyField('core.User', source_field='user_id', db_constraint=True, to_field='id', related_name='refresh_tokens', on_delete=OnDelete.CASCADE)),
                ('issued_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('expires_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('used_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('revoked_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'core_refresh_token', 'app': 'core', 'pk_attr': 'id', 'table_description': 'One refresh token of a sign-in session (a family), rotated on every use.'},
            bases=['Model'],
        ),
    ]
