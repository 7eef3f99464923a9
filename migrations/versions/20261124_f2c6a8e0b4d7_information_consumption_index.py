"""ICDI-EC: versioned indicator catalogue (version 1 = the CAICT default, inserted here), city-year values
with their source, import batches, computations; campaigns tagged as information consumption

Revision ID: f2c6a8e0b4d7
Revises: e6b1d4f8a2c9
Create Date: 2026-11-24 12:00:00.000000

"""
from datetime import datetime, timezone

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'f2c6a8e0b4d7'
down_revision = 'e6b1d4f8a2c9'
branch_labels = None
depends_on = None

# A copy of voucher/info_consumption_index/catalogue.py DEFAULT_INDICATORS at the time of writing: a migration must not
# change when the code does. (code, first level, second level, name, unit, kind)
DEFAULT_INDICATORS = (
    ("D1", "demand", "消费者购买力", "人均可支配收入", "元", "numeric"),
    ("D2", "demand", "信息通信需求", "平均每户每月上网流量（DOU）", "MB", "numeric"),
    ("D3", "demand", "消费者数字技能", "人均网络零售额", "元", "numeric"),
    ("S1", "supply", "通信服务发展水平", "人均基础电信业务收入", "元", "numeric"),
    ("S2", "supply", "软件服务发展水平", "人均软件和信息技术服务业务收入", "元", "numeric"),
    ("S3", "supply", "电子制造发展水平", "人均电子信息制造业收入", "元", "numeric"),
    ("S4", "supply", "公共服务发展水平", "社区医院及一级以上医疗机构电子病历普及率", "%", "share"),
    ("S5", "supply", "公共服务发展水平", "学校多媒体教室普及率", "%", "share"),
    ("S6", "supply", "公共服务发展水平", "城市重点公共区域视频监控覆盖率", "%", "share"),
    ("S7", "supply", "公共服务发展水平", "政务数据“上云”覆盖率", "%", "share"),
    ("S8", "supply", "公共服务发展水平", "国家级工业互联网平台和工业大数据服务平台数量", "个", "numeric"),
    ("S9", "supply", "企业科技创新实力", "“上云上平台”企业数量", "个", "numeric"),
    ("S10", "supply", "企业科技创新实力", "新增专精特新“小巨人”企业数量", "个", "numeric"),
    ("S11", "supply", "信息消费引导水平", "信息消费项目专项资金额度", "元", "numeric"),
    ("S12", "supply", "信息消费引导水平", "新增新型信息消费示范项目", "个", "numeric"),
    ("S13", "supply", "信息消费引导水平", "新增信息消费体验中心（馆）数量", "个", "numeric"),
    ("E1", "environment", "网络支撑能力", "100M及以上宽带接入用户占比", "%", "share"),
    ("E2", "environment", "网络支撑能力", "三大运营商平均宽带接入速率", "Mbps", "numeric"),
    ("E3", "environment", "网络支撑能力", "5G基站建设数量", "万个", "numeric"),
    ("E4", "environment", "网络支撑能力", "参与5G技术试验和产业布局企业数量", "个", "numeric"),
    ("E5", "environment", "网络支撑能力", "行政村通光纤覆盖水平", "%", "share"),
    ("E6", "environment", "网络支撑能力", "移动宽带覆盖水平", "%", "share"),
    ("E7", "environment", "其他支撑能力", "人均快递业务量", "件", "numeric"),
)
FIRST_WEIGHTS = {"demand": 0.15, "supply": 0.55, "environment": 0.30}  # Delphi, the report's appendix


def upgrade():
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.add_column(sa.Column('is_information_consumption', sa.Boolean(), server_default=sa.false(), nullable=False))

    versions = op.create_table('index_catalogue_versions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('submitted_by_id', sa.Integer(), nullable=True),
    sa.Column('approved_by_id', sa.Integer(), nullable=True),
    sa.Column('approved_at', sa.DateTime(), nullable=True),
    sa.Column('rejection_reason', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.CheckConstraint("status IN ('draft', 'pending_approval', 'active', 'retired', 'rejected')", name=op.f('ck_index_catalogue_versions_status_known')),
    sa.CheckConstraint('version > 0', name=op.f('ck_index_catalogue_versions_version_positive')),
    sa.ForeignKeyConstraint(['approved_by_id'], ['users.id'], name=op.f('fk_index_catalogue_versions_approved_by_id_users')),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_index_catalogue_versions_created_by_id_users')),
    sa.ForeignKeyConstraint(['submitted_by_id'], ['users.id'], name=op.f('fk_index_catalogue_versions_submitted_by_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_index_catalogue_versions')),
    sa.UniqueConstraint('version', name=op.f('uq_index_catalogue_versions_version'))
    )
    op.create_table('index_import_batches',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('file_name', sa.String(length=200), nullable=False),
    sa.Column('file_type', sa.String(length=8), nullable=False),
    sa.Column('layout', sa.String(length=8), nullable=False),
    sa.Column('cells', sa.Integer(), nullable=False),
    sa.Column('replaced', sa.Integer(), nullable=False),
    sa.Column('imported_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.CheckConstraint("file_type IN ('csv', 'xlsx')", name=op.f('ck_index_import_batches_file_type_known')),
    sa.CheckConstraint("layout IN ('long', 'wide')", name=op.f('ck_index_import_batches_layout_known')),
    sa.ForeignKeyConstraint(['imported_by_id'], ['users.id'], name=op.f('fk_index_import_batches_imported_by_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_index_import_batches'))
    )
    op.create_table('index_computations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('catalogue_version_id', sa.Integer(), nullable=False),
    sa.Column('settings', sa.JSON(), nullable=False),
    sa.Column('years', sa.JSON(), nullable=False),
    sa.Column('results', sa.JSON(), nullable=False),
    sa.Column('computed_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['catalogue_version_id'], ['index_catalogue_versions.id'], name=op.f('fk_index_computations_catalogue_version_id_index_catalogue_versions')),
    sa.ForeignKeyConstraint(['computed_by_id'], ['users.id'], name=op.f('fk_index_computations_computed_by_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_index_computations'))
    )
    with op.batch_alter_table('index_computations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_index_computations_catalogue_version_id'), ['catalogue_version_id'], unique=False)

    indicators = op.create_table('index_indicators',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('version_id', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=8), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('unit', sa.String(length=20), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('first_level', sa.String(length=12), nullable=False),
    sa.Column('second_level', sa.String(length=40), nullable=False),
    sa.Column('weight', sa.Float(), nullable=False),
    sa.CheckConstraint("first_level IN ('demand', 'supply', 'environment')", name=op.f('ck_index_indicators_first_level_known')),
    sa.CheckConstraint("kind IN ('share', 'numeric')", name=op.f('ck_index_indicators_kind_known')),
    sa.CheckConstraint('weight >= 0 AND weight <= 1', name=op.f('ck_index_indicators_weight_range')),
    sa.ForeignKeyConstraint(['version_id'], ['index_catalogue_versions.id'], name=op.f('fk_index_indicators_version_id_index_catalogue_versions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_index_indicators')),
    sa.UniqueConstraint('version_id', 'code', name=op.f('uq_index_indicators_version_id_code'))
    )
    with op.batch_alter_table('index_indicators', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_index_indicators_version_id'), ['version_id'], unique=False)

    op.create_table('index_values',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('city', sa.String(length=40), nullable=False),
    sa.Column('year', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=8), nullable=False),
    sa.Column('value', sa.Float(), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('batch_id', sa.Integer(), nullable=True),
    sa.Column('provenance', sa.JSON(), nullable=True),
    sa.Column('updated_by_id', sa.Integer(), nullable=True),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.CheckConstraint("source IN ('official', 'campaign_feed')", name=op.f('ck_index_values_source_known')),
    sa.CheckConstraint('value >= 0', name=op.f('ck_index_values_value_not_negative')),
    sa.CheckConstraint('year BETWEEN 1990 AND 2100', name=op.f('ck_index_values_year_range')),
    sa.ForeignKeyConstraint(['batch_id'], ['index_import_batches.id'], name=op.f('fk_index_values_batch_id_index_import_batches')),
    sa.ForeignKeyConstraint(['updated_by_id'], ['users.id'], name=op.f('fk_index_values_updated_by_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_index_values')),
    sa.UniqueConstraint('city', 'year', 'code', 'source', name=op.f('uq_index_values_city_year_code_source'))
    )
    with op.batch_alter_table('index_values', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_index_values_batch_id'), ['batch_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_index_values_city'), ['city'], unique=False)
        batch_op.create_index(batch_op.f('ix_index_values_year'), ['year'], unique=False)

    # Version 1: the report's catalogue and weights, so a fresh database can import and compute at once.
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    op.bulk_insert(versions, [{
        'id': 1, 'version': 1, 'status': 'active', 'note': '默认指标目录与权重（中国信通院 2022 报告表 2 及附录）',
        'created_at': now,
    }])
    counts = {first: sum(1 for row in DEFAULT_INDICATORS if row[1] == first) for first in FIRST_WEIGHTS}
    op.bulk_insert(indicators, [
        {'version_id': 1, 'position': position, 'code': code, 'name': name, 'unit': unit, 'kind': kind,
         'first_level': first, 'second_level': second, 'weight': FIRST_WEIGHTS[first] / counts[first]}
        for position, (code, first, second, name, unit, kind) in enumerate(DEFAULT_INDICATORS, start=1)
    ])
    if op.get_bind().dialect.name == 'postgresql':
        # the explicit id above does not move the sequence
        op.execute("SELECT setval(pg_get_serial_sequence('index_catalogue_versions', 'id'), 1)")


def downgrade():
    with op.batch_alter_table('index_values', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_index_values_year'))
        batch_op.drop_index(batch_op.f('ix_index_values_city'))
        batch_op.drop_index(batch_op.f('ix_index_values_batch_id'))
    op.drop_table('index_values')
    with op.batch_alter_table('index_indicators', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_index_indicators_version_id'))
    op.drop_table('index_indicators')
    with op.batch_alter_table('index_computations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_index_computations_catalogue_version_id'))
    op.drop_table('index_computations')
    op.drop_table('index_import_batches')
    op.drop_table('index_catalogue_versions')
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.drop_column('is_information_consumption')
