"""Initial schema: every table of DESIGN.md's vocabulary, plus the `default` organization.

Revision ID: 0001
Revises: 
Create Date: 2026-11-29 19:05:47.957440
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('leases',
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('holder', sa.String(length=255), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_leases'))
    )
    op.create_table('organizations',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_organizations'))
    )
    op.create_table('users',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('username', sa.String(length=255), nullable=False),
    sa.Column('password_hash', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_users')),
    sa.UniqueConstraint('username', name=op.f('uq_users_username'))
    )
    op.create_table('connections',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('org_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('url', sa.Text(), nullable=False),
    sa.Column('aggregate_schema', sa.String(length=255), nullable=False),
    sa.Column('database_override', sa.String(length=255), nullable=True),
    sa.Column('schema_override', sa.String(length=255), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['org_id'], ['organizations.id'], name=op.f('fk_connections_org_id_organizations')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_connections')),
    sa.UniqueConstraint('org_id', 'name', name=op.f('uq_connections_org_id_name'))
    )
    op.create_index(op.f('ix_connections_org_id'), 'connections', ['org_id'], unique=False)
    op.create_table('memberships',
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('org_id', sa.String(length=64), nullable=False),
    sa.Column('role', sa.String(length=32), nullable=False),
    sa.CheckConstraint("role IN ('admin', 'aggregates_manage', 'aggregates_view')", name=op.f('ck_memberships_role')),
    sa.ForeignKeyConstraint(['org_id'], ['organizations.id'], name=op.f('fk_memberships_org_id_organizations')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_memberships_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('user_id', 'org_id', 'role', name=op.f('pk_memberships'))
    )
    op.create_table('projects',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('org_id', sa.String(length=64), nullable=False),
    sa.Column('unique_name', sa.String(length=255), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('version', sa.String(length=64), nullable=True),
    sa.Column('source_digest', sa.String(length=128), nullable=True),
    sa.Column('published_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('published_by', sa.String(length=255), nullable=True),
    sa.ForeignKeyConstraint(['org_id'], ['organizations.id'], name=op.f('fk_projects_org_id_organizations')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_projects')),
    sa.UniqueConstraint('org_id', 'unique_name', name=op.f('uq_projects_org_id_unique_name'))
    )
    op.create_index(op.f('ix_projects_org_id'), 'projects', ['org_id'], unique=False)
    op.create_table('settings',
    sa.Column('org_id', sa.String(length=64), nullable=False),
    sa.Column('key', sa.String(length=255), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['org_id'], ['organizations.id'], name=op.f('fk_settings_org_id_organizations')),
    sa.PrimaryKeyConstraint('org_id', 'key', name=op.f('pk_settings'))
    )
    op.create_table('cubes',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('project_id', sa.Uuid(), nullable=False),
    sa.Column('org_id', sa.String(length=64), nullable=False),
    sa.Column('unique_name', sa.String(length=255), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['org_id'], ['organizations.id'], name=op.f('fk_cubes_org_id_organizations')),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_cubes_project_id_projects'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_cubes')),
    sa.UniqueConstraint('project_id', 'unique_name', name=op.f('uq_cubes_project_id_unique_name'))
    )
    op.create_index(op.f('ix_cubes_org_id'), 'cubes', ['org_id'], unique=False)
    op.create_index(op.f('ix_cubes_project_id'), 'cubes', ['project_id'], unique=False)
    op.create_table('aggregate_definitions',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('org_id', sa.String(length=64), nullable=False),
    sa.Column('project_id', sa.Uuid(), nullable=False),
    sa.Column('cube_id', sa.Uuid(), nullable=False),
    sa.Column('unique_name', sa.String(length=255), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('type', sa.String(length=32), nullable=False),
    sa.Column('subtype', sa.String(length=32), nullable=False),
    sa.Column('fingerprint', sa.String(length=128), nullable=False),
    sa.Column('spec', sa.JSON(), nullable=False),
    sa.Column('fact_dataset', sa.String(length=255), nullable=False),
    sa.Column('connection_id', sa.String(length=255), nullable=False),
    sa.Column('incremental', sa.Boolean(), nullable=False),
    sa.Column('blocked', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('removed_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("subtype IN ('manual', 'prediction_defined', 'demand_defined')", name=op.f('ck_aggregate_definitions_subtype')),
    sa.CheckConstraint("type IN ('user_defined', 'system_defined')", name=op.f('ck_aggregate_definitions_type')),
    sa.ForeignKeyConstraint(['cube_id'], ['cubes.id'], name=op.f('fk_aggregate_definitions_cube_id_cubes'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['org_id'], ['organizations.id'], name=op.f('fk_aggregate_definitions_org_id_organizations')),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_aggregate_definitions_project_id_projects'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_aggregate_definitions')),
    sa.UniqueConstraint('cube_id', 'unique_name', name=op.f('uq_aggregate_definitions_cube_id_unique_name'))
    )
    op.create_index(op.f('ix_aggregate_definitions_cube_id'), 'aggregate_definitions', ['cube_id'], unique=False)
    op.create_index(op.f('ix_aggregate_definitions_org_id'), 'aggregate_definitions', ['org_id'], unique=False)
    op.create_table('schedules',
    sa.Column('job_id', sa.Uuid(), nullable=False),
    sa.Column('org_id', sa.String(length=64), nullable=False),
    sa.Column('project_id', sa.Uuid(), nullable=False),
    sa.Column('cube_id', sa.Uuid(), nullable=False),
    sa.Column('time_expression', sa.String(length=255), nullable=False),
    sa.Column('time_zone', sa.String(length=64), nullable=False),
    sa.Column('path', sa.String(length=255), nullable=False),
    sa.Column('full_build', sa.Boolean(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by_user', sa.String(length=255), nullable=False),
    sa.Column('next_fire_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['cube_id'], ['cubes.id'], name=op.f('fk_schedules_cube_id_cubes'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['org_id'], ['organizations.id'], name=op.f('fk_schedules_org_id_organizations')),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_schedules_project_id_projects'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('job_id', name=op.f('pk_schedules'))
    )
    op.create_index('ix_schedules_active_next_fire_at', 'schedules', ['active', 'next_fire_at'], unique=False)
    op.create_index('ix_schedules_org_cube', 'schedules', ['org_id', 'cube_id'], unique=False)
    op.create_table('build_batches',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('org_id', sa.String(length=64), nullable=False),
    sa.Column('project_id', sa.Uuid(), nullable=False),
    sa.Column('cube_id', sa.Uuid(), nullable=False),
    sa.Column('batch_type', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('create_date', sa.DateTime(timezone=True), nullable=False),
    sa.Column('start_time', sa.DateTime(timezone=True), nullable=True),
    sa.Column('end_time', sa.DateTime(timezone=True), nullable=True),
    sa.Column('estimate_time', sa.Integer(), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('requested_by', sa.String(length=255), nullable=False),
    sa.Column('job_id', sa.Uuid(), nullable=True),
    sa.Column('execution_id', sa.Uuid(), nullable=True),
    sa.Column('worker_id', sa.String(length=255), nullable=True),
    sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('cancel_requested', sa.Boolean(), nullable=False),
    sa.CheckConstraint("batch_type IN ('materialize-pending-instances', 'incremental-rebuild', 'full-rebuild')", name=op.f('ck_build_batches_batch_type')),
    sa.CheckConstraint("status IN ('pending', 'inprogress', 'done', 'failed', 'cancelled')", name=op.f('ck_build_batches_status')),
    sa.ForeignKeyConstraint(['cube_id'], ['cubes.id'], name=op.f('fk_build_batches_cube_id_cubes'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['job_id'], ['schedules.job_id'], name=op.f('fk_build_batches_job_id_schedules'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['org_id'], ['organizations.id'], name=op.f('fk_build_batches_org_id_organizations')),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_build_batches_project_id_projects'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_build_batches'))
    )
    op.create_index('ix_build_batches_claim', 'build_batches', ['status', 'create_date'], unique=False)
    op.create_index('ix_build_batches_cube_history', 'build_batches', ['org_id', 'cube_id', 'create_date', 'id'], unique=False)
    op.create_index('ix_build_batches_history', 'build_batches', ['org_id', 'create_date', 'id'], unique=False)
    op.create_table('aggregate_instances',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('definition_id', sa.Uuid(), nullable=False),
    sa.Column('org_id', sa.String(length=64), nullable=False),
    sa.Column('cube_id', sa.Uuid(), nullable=False),
    sa.Column('batch_id', sa.Uuid(), nullable=True),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('table_name', sa.String(length=255), nullable=True),
    sa.Column('table_schema', sa.String(length=255), nullable=True),
    sa.Column('connection_id', sa.String(length=255), nullable=True),
    sa.Column('number_of_rows', sa.Integer(), nullable=True),
    sa.Column('build_duration', sa.Float(), nullable=True),
    sa.Column('materialization_start_time', sa.DateTime(timezone=True), nullable=True),
    sa.Column('materialization_end_time', sa.DateTime(timezone=True), nullable=True),
    sa.Column('sql', sa.Text(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('source_instance_id', sa.Uuid(), nullable=True),
    sa.Column('watermark', sa.Text(), nullable=True),
    sa.Column('drop_after', sa.DateTime(timezone=True), nullable=True),
    sa.Column('table_dropped_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("status IN ('pending', 'inprogress', 'active', 'failed', 'cancelled', 'deleted', 'invalid')", name=op.f('ck_aggregate_instances_status')),
    sa.ForeignKeyConstraint(['batch_id'], ['build_batches.id'], name=op.f('fk_aggregate_instances_batch_id_build_batches'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['cube_id'], ['cubes.id'], name=op.f('fk_aggregate_instances_cube_id_cubes'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['definition_id'], ['aggregate_definitions.id'], name=op.f('fk_aggregate_instances_definition_id_aggregate_definitions'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['org_id'], ['organizations.id'], name=op.f('fk_aggregate_instances_org_id_organizations')),
    sa.ForeignKeyConstraint(['source_instance_id'], ['aggregate_instances.id'], name=op.f('fk_aggregate_instances_source_instance_id_aggregate_instances'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_aggregate_instances'))
    )
    op.create_index(op.f('ix_aggregate_instances_batch_id'), 'aggregate_instances', ['batch_id'], unique=False)
    op.create_index(op.f('ix_aggregate_instances_definition_id'), 'aggregate_instances', ['definition_id'], unique=False)
    op.create_index('ix_aggregate_instances_drop_after', 'aggregate_instances', ['drop_after'], unique=False)
    op.create_index('ix_aggregate_instances_org_cube_status', 'aggregate_instances', ['org_id', 'cube_id', 'status'], unique=False)
    op.create_index('uq_aggregate_instances_one_active', 'aggregate_instances', ['definition_id'], unique=True, sqlite_where=sa.text("status = 'active'"), postgresql_where=sa.text("status = 'active'"))
    op.create_table('executions',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('job_id', sa.Uuid(), nullable=False),
    sa.Column('org_id', sa.String(length=64), nullable=False),
    sa.Column('cube_id', sa.Uuid(), nullable=False),
    sa.Column('scheduled_fire_time', sa.DateTime(timezone=True), nullable=False),
    sa.Column('executed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('batch_id', sa.Uuid(), nullable=True),
    sa.Column('misfire', sa.Boolean(), nullable=False),
    sa.Column('coalesced', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['batch_id'], ['build_batches.id'], name=op.f('fk_executions_batch_id_build_batches'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['cube_id'], ['cubes.id'], name=op.f('fk_executions_cube_id_cubes'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['job_id'], ['schedules.job_id'], name=op.f('fk_executions_job_id_schedules'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['org_id'], ['organizations.id'], name=op.f('fk_executions_org_id_organizations')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_executions')),
    sa.UniqueConstraint('job_id', 'scheduled_fire_time', name=op.f('uq_executions_job_id_scheduled_fire_time'))
    )
    op.create_index('ix_executions_job_id_executed_at', 'executions', ['job_id', 'executed_at'], unique=False)
    organizations = sa.table(
        "organizations",
        sa.column("id", sa.String),
        sa.column("name", sa.String),
        sa.column("created_at", sa.DateTime(timezone=True)),
    )
    now = datetime.now(UTC)
    if op.get_bind().dialect.name == "sqlite":
        now = now.replace(tzinfo=None)  # SQLite stores naive UTC (see UTCDateTime)
    op.bulk_insert(organizations, [{"id": "default", "name": "default", "created_at": now}])


def downgrade() -> None:
    op.drop_index('ix_executions_job_id_executed_at', table_name='executions')
    op.drop_table('executions')
    op.drop_index('uq_aggregate_instances_one_active', table_name='aggregate_instances', sqlite_where=sa.text("status = 'active'"), postgresql_where=sa.text("status = 'active'"))
    op.drop_index('ix_aggregate_instances_org_cube_status', table_name='aggregate_instances')
    op.drop_index('ix_aggregate_instances_drop_after', table_name='aggregate_instances')
    op.drop_index(op.f('ix_aggregate_instances_definition_id'), table_name='aggregate_instances')
    op.drop_index(op.f('ix_aggregate_instances_batch_id'), table_name='aggregate_instances')
    op.drop_table('aggregate_instances')
    op.drop_index('ix_build_batches_history', table_name='build_batches')
    op.drop_index('ix_build_batches_cube_history', table_name='build_batches')
    op.drop_index('ix_build_batches_claim', table_name='build_batches')
    op.drop_table('build_batches')
    op.drop_index('ix_schedules_org_cube', table_name='schedules')
    op.drop_index('ix_schedules_active_next_fire_at', table_name='schedules')
    op.drop_table('schedules')
    op.drop_index(op.f('ix_aggregate_definitions_org_id'), table_name='aggregate_definitions')
    op.drop_index(op.f('ix_aggregate_definitions_cube_id'), table_name='aggregate_definitions')
    op.drop_table('aggregate_definitions')
    op.drop_index(op.f('ix_cubes_project_id'), table_name='cubes')
    op.drop_index(op.f('ix_cubes_org_id'), table_name='cubes')
    op.drop_table('cubes')
    op.drop_table('settings')
    op.drop_index(op.f('ix_projects_org_id'), table_name='projects')
    op.drop_table('projects')
    op.drop_table('memberships')
    op.drop_index(op.f('ix_connections_org_id'), table_name='connections')
    op.drop_table('connections')
    op.drop_table('users')
    op.drop_table('organizations')
    op.drop_table('leases')
