from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from backend.models import new_public_id
from crowdsource.challenges.models import ChallengeStatus, ProposalStatus
from json import dumps, loads
from tortoise.fields.base import OnDelete
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('challenges', '0001_initial'), ('core', '0001_initial'), ('crowdsource', '0001_initial')]

    initial = False

    operations = [
        ops.CreateModel(
            name='Challenge',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('public_id', fields.CharField(default=new_public_id, unique=True, max_length=32)),
                ('campaign', fields.ForeignKeyField('crowdsource.Campaign', source_field='campaign_id', db_constraint=True, to_field='id', related_name='challenges', on_delete=OnDelete.CASCADE)),
                ('number', fields.IntField(null=True)),
                ('title', fields.CharField(max_length=100)),
                ('category', fields.CharField(max_length=32)),
                ('problem_statement', fields.TextField(unique=False)),
                ('background', fields.TextField(default='', unique=False)),
                ('expected_outcome', fields.TextField(default='', unique=False)),
                ('owning_department', fields.CharField(max_length=100)),
                ('open_data', fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('rubric', fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('prize', fields.CharField(default='', max_length=500)),
                ('submission_deadline', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('submissions_closed_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('status', fields.CharEnumField(default=ChallengeStatus.DRAFT, description='DRAFT: draft\nIN_REVIEW: in_review\nPUBLISHED: published', enum_type=ChallengeStatus, max_length=12)),
                ('review_note', fields.CharField(default='', max_length=500)),
                ('created_by', fields.CharField(max_length=32)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('updated_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('published_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'challenges_challenge', 'app': 'challenges', 'unique_together': (('campaign', 'number'),), 'pk_attr': 'id', 'table_description': 'A solution challenge written from one or more pain points, published in the booklet.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='ChallengeSource',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('challenge', fields.ForeignKeyField('challenges.Challenge', source_field='challenge_id', db_constraint=True, to_field='id', related_name='sources', on_delete=OnDelete.CASCADE)),
                ('pain_point', fields.ForeignKeyField('crowdsource.PainPoint', source_field='pain_point_id', db_constraint=True, to_field='id', related_name='challenge_sources', on_delete=OnDelete.CASCADE)),
            ],
            options={'table': 'challenges_challenge_source', 'app': 'challenges', 'unique_together': (('challenge', 'pain_point'),), 'pk_attr': 'id', 'table_description': 'A pain point a challenge comes from.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='ConflictOfInterest',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('challenge', fields.ForeignKeyField('challenges.Challenge', source_field='challenge_id', db_constraint=True, to_field='id', related_name='conflicts', on_delete=OnDelete.CASCADE)),
                ('judge', fields.ForeignKeyField('core.User', source_field='judge_id', db_constraint=True, to_field='id', related_name='conflicts', on_delete=OnDelete.CASCADE)),
                ('vendor', fields.ForeignKeyField('challenges.Vendor', source_field='vendor_id', db_constraint=True, to_field='id', related_name='conflicts', on_delete=OnDelete.CASCADE)),
                ('reason', fields.CharField(default='', max_length=300)),
                ('declared_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'challenges_conflict', 'app': 'challenges', 'unique_together': (('challenge', 'judge', 'vendor'),), 'pk_attr': 'id', 'table_description': "A judge's declared conflict with a vendor: the judge is excluded from its proposals."},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Follow',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('pain_point', fields.ForeignKeyField('crowdsource.PainPoint', source_field='pain_point_id', db_constraint=True, to_field='id', related_name='followers', on_delete=OnDelete.CASCADE)),
                ('user', fields.ForeignKeyField('core.User', source_field='user_id', db_constraint=True, to_field='id', related_name='follows', on_delete=OnDelete.CASCADE)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'challenges_follow', 'app': 'challenges', 'unique_together': (('pain_point', 'user'),), 'pk_attr': 'id', 'table_description': 'A resident following a pain point, told when its challenge is published or awarded.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='JudgeAssignment',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('challenge', fields.ForeignKeyField('challenges.Challenge', source_field='challenge_id', db_constraint=True, to_field='id', related_name='judges', on_delete=OnDelete.CASCADE)),
                ('judge', fields.ForeignKeyField('core.User', source_field='judge_id', db_constraint=True, to_field='id', related_name='judge_assignments', on_delete=OnDelete.CASCADE)),
                ('assigned_by', fields.CharField(max_length=32)),
                ('assigned_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'challenges_judge_assignment', 'app': 'challenges', 'unique_together': (('challenge', 'judge'),), 'pk_attr': 'id', 'table_description': "A judge assigned by a curator to score a challenge's proposals."},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Proposal',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('public_id', fields.CharField(default=new_public_id, unique=True, max_length=32)),
                ('challenge', fields.ForeignKeyField('challenges.Challenge', source_field='challenge_id', db_constraint=True, to_field='id', related_name='proposals', on_delete=OnDelete.CASCADE)),
                ('vendor', fields.ForeignKeyField('challenges.Vendor', source_field='vendor_id', db_constraint=True, to_field='id', related_name='proposals', on_delete=OnDelete.CASCADE)),
                ('title', fields.CharField(max_length=100)),
                ('summary', fields.TextField(default='', unique=False)),
                ('body', fields.TextField(default='', unique=False)),
                ('attachments', fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('status', fields.CharEnumField(default=ProposalStatus.DRAFT, description='DRAFT: draft\nSUBMITTED: submitted\nWITHDRAWN: withdrawn\nSHORTLISTED: shortlisted\nAWARDED: awarded\nDECLINED: declined', enum_type=ProposalStatus, max_length=12)),
                ('versions_submitted', fields.IntField(default=0)),
                ('decision_feedback', fields.TextField(default='', unique=False)),
                ('decided_by', fields.CharField(null=True, max_length=32)),
                ('decided_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('updated_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('submitted_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'challenges_proposal', 'app': 'challenges', 'unique_together': (('challenge', 'vendor'),), 'pk_attr': 'id', 'table_description': "A vendor's solution to a challenge, confidential to the vendor, curators and judges."},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='ProposalVersion',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('proposal', fields.ForeignKeyField('challenges.Proposal', source_field='proposal_id', db_constraint=True, to_field='id', related_name='versions', on_delete=OnDelete.CASCADE)),
                ('number', fields.IntField()),
                ('title', fields.CharField(max_length=100)),
                ('summary', fields.TextField(default='', unique=False)),
                ('body', fields.TextField(default='', unique=False)),
                ('attachments', fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('submitted_by', fields.CharField(max_length=32)),
                ('submitted_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'challenges_proposal_version', 'app': 'challenges', 'unique_together': (('proposal', 'number'),), 'pk_attr': 'id', 'table_description': 'Every submitted version of a proposal, kept as it was submitted.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Score',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('proposal', fields.ForeignKeyField('challenges.Proposal', source_field='proposal_id', db_constraint=True, to_field='id', related_name='scores', on_delete=OnDelete.CASCADE)),
                ('judge', fields.ForeignKeyField('core.User', source_field='judge_id', db_constraint=True, to_field='id', related_name='scores', on_delete=OnDelete.CASCADE)),
                ('scores', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('comments', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('overall_comment', fields.TextField(default='', unique=False)),
                ('total', fields.FloatField()),
                ('submitted_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'challenges_score', 'app': 'challenges', 'unique_together': (('proposal', 'judge'),), 'pk_attr': 'id', 'table_description': "One judge's scores of one proposal, per rubric criterion, with comments."},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='ShortlistEntry',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('campaign', fields.ForeignKeyField('crowdsource.Campaign', source_field='campaign_id', db_constraint=True, to_field='id', related_name='shortlist', on_delete=OnDelete.CASCADE)),
                ('pain_point', fields.OneToOneField('crowdsource.PainPoint', source_field='pain_point_id', db_constraint=True, to_field='id', related_name='shortlist_entry', on_delete=OnDelete.CASCADE)),
                ('note', fields.CharField(default='', max_length=500)),
                ('added_by', fields.CharField(max_length=32)),
                ('added_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'challenges_shortlist_entry', 'app': 'challenges', 'pk_attr': 'id', 'table_description': 'A valid pain point a curator has picked as material for a challenge.'},
            bases=['Model'],
        ),
    ]
