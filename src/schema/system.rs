//! Cassandra's own keyspaces: the tables of `system`, `system_schema`,
//! `system_auth`, `system_distributed` and `system_traces` whose mutations
//! appear in commit logs, as each release family defines them, with the
//! table ids Cassandra gives them.
//!
//! Cassandra does not store these tables' ids anywhere: it derives them from
//! the names (`TableId.forSystemTable` in 4.0+, `CFMetaData.generateLegacyCfId`
//! in 3.x, both `UUID.nameUUIDFromBytes(keyspace + table)`: the MD5 of the
//! two names' bytes, stamped as a version 3 UUID). [`system_table_id`] does
//! the same.
//!
//! The definitions follow `SystemKeyspace`, `SchemaKeyspace`,
//! `AuthKeyspace`, `SystemDistributedKeyspace` and `TraceKeyspace` of each
//! release family. Where a family's releases differ (4.0 and 4.1, 3.0 and
//! 3.11), the family's definition has the later release's columns too: a
//! mutation names every column it carries, so a column an older release
//! never writes costs nothing.

use md5::{Digest, Md5};
use uuid::Uuid;

use super::table::Schema;

/// A family of Cassandra releases that share a commit-log descriptor
/// version and the definitions of their system tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Release {
    /// Cassandra 3.0 to 3.11 (descriptor version 6).
    Cassandra3,
    /// Cassandra 4.0 and 4.1 (descriptor version 7).
    Cassandra4,
    /// Cassandra 5.0 (descriptor version 8).
    Cassandra5,
}

impl Release {
    /// The family that writes segments of this descriptor version.
    pub fn from_descriptor_version(version: i32) -> Option<Release> {
        match version {
            6 => Some(Release::Cassandra3),
            7 => Some(Release::Cassandra4),
            8 => Some(Release::Cassandra5),
            _ => None,
        }
    }

    fn bit(self) -> u8 {
        match self {
            Release::Cassandra3 => R3,
            Release::Cassandra4 => R4,
            Release::Cassandra5 => R5,
        }
    }
}

const R3: u8 = 1;
const R4: u8 = 2;
const R5: u8 = 4;
const ALL: u8 = R3 | R4 | R5;

/// The names of Cassandra's keyspaces whose tables are built in.
pub const SYSTEM_KEYSPACES: [&str; 5] =
    ["system", "system_schema", "system_auth", "system_distributed", "system_traces"];

/// The id Cassandra gives a table of its own keyspaces: the MD5 of the
/// keyspace name's bytes followed by the table name's, as a version 3 UUID
/// (Java's `UUID.nameUUIDFromBytes`).
pub fn system_table_id(keyspace: &str, table: &str) -> Uuid {
    let mut md5 = Md5::new();
    md5.update(keyspace.as_bytes());
    md5.update(table.as_bytes());
    let digest: [u8; 16] = md5.finalize().into();
    uuid::Builder::from_md5_bytes(digest).into_uuid()
}

/// The tables of `system_schema` (Cassandra 3.0 to 5.0): a tracker applies
/// the mutations of all of them, and reads the schema back from
/// `keyspaces`, `tables`, `columns`, `dropped_columns`, `types` and `views`.
pub const SYSTEM_SCHEMA_TABLES: [&str; 11] = [
    "keyspaces",
    "tables",
    "columns",
    "dropped_columns",
    "triggers",
    "views",
    "types",
    "functions",
    "aggregates",
    "indexes",
    "column_masks",
];

/// Each definition with the release families it belongs to.
static DEFINITIONS: &[(u8, &str)] = &[
    // system_schema: the same tables from 3.0 to 5.0 (3.8 added `cdc`, 4.0
    // `additional_write_policy` and `read_repair`, 4.1 `memtable`, later
    // releases `allow_auto_snapshot`, `incremental_backups`; 5.0 added
    // `column_masks`).
    (
        ALL,
        "CREATE TABLE system_schema.keyspaces (keyspace_name text, durable_writes boolean,
            replication frozen<map<text, text>>, PRIMARY KEY ((keyspace_name)));
        CREATE TABLE system_schema.tables (keyspace_name text, table_name text, allow_auto_snapshot boolean,
            bloom_filter_fp_chance double, caching frozen<map<text, text>>, comment text,
            compaction frozen<map<text, text>>, compression frozen<map<text, text>>, memtable text,
            crc_check_chance double, dclocal_read_repair_chance double, default_time_to_live int,
            extensions frozen<map<text, blob>>, flags frozen<set<text>>, gc_grace_seconds int,
            incremental_backups boolean, id uuid, max_index_interval int, memtable_flush_period_in_ms int,
            min_index_interval int, read_repair_chance double, speculative_retry text,
            additional_write_policy text, cdc boolean, read_repair text,
            automated_repair_full frozen<map<text, text>>, automated_repair_incremental frozen<map<text, text>>,
            PRIMARY KEY ((keyspace_name), table_name));
        CREATE TABLE system_schema.columns (keyspace_name text, table_name text, column_name text,
            clustering_order text, column_name_bytes blob, kind text, position int, type text,
            PRIMARY KEY ((keyspace_name), table_name, column_name));
        CREATE TABLE system_schema.column_masks (keyspace_name text, table_name text, column_name text,
            function_keyspace text, function_name text, function_argument_types frozen<list<text>>,
            function_argument_values frozen<list<text>>, function_argument_nulls frozen<list<boolean>>,
            PRIMARY KEY ((keyspace_name), table_name, column_name));
        CREATE TABLE system_schema.dropped_columns (keyspace_name text, table_name text, column_name text,
            dropped_time timestamp, kind text, type text, PRIMARY KEY ((keyspace_name), table_name, column_name));
        CREATE TABLE system_schema.triggers (keyspace_name text, table_name text, trigger_name text,
            options frozen<map<text, text>>, PRIMARY KEY ((keyspace_name), table_name, trigger_name));
        CREATE TABLE system_schema.views (keyspace_name text, view_name text, base_table_id uuid,
            base_table_name text, where_clause text, allow_auto_snapshot boolean, bloom_filter_fp_chance double,
            caching frozen<map<text, text>>, comment text, compaction frozen<map<text, text>>,
            compression frozen<map<text, text>>, memtable text, crc_check_chance double,
            dclocal_read_repair_chance double, default_time_to_live int, extensions frozen<map<text, blob>>,
            gc_grace_seconds int, incremental_backups boolean, id uuid, include_all_columns boolean,
            max_index_interval int, memtable_flush_period_in_ms int, min_index_interval int,
            read_repair_chance double, speculative_retry text, additional_write_policy text, cdc boolean,
            read_repair text, automated_repair_full frozen<map<text, text>>,
            automated_repair_incremental frozen<map<text, text>>, PRIMARY KEY ((keyspace_name), view_name));
        CREATE TABLE system_schema.indexes (keyspace_name text, table_name text, index_name text, kind text,
            options frozen<map<text, text>>, PRIMARY KEY ((keyspace_name), table_name, index_name));
        CREATE TABLE system_schema.types (keyspace_name text, type_name text, field_names frozen<list<text>>,
            field_types frozen<list<text>>, PRIMARY KEY ((keyspace_name), type_name));
        CREATE TABLE system_schema.functions (keyspace_name text, function_name text,
            argument_types frozen<list<text>>, argument_names frozen<list<text>>, body text, language text,
            return_type text, called_on_null_input boolean,
            PRIMARY KEY ((keyspace_name), function_name, argument_types));
        CREATE TABLE system_schema.aggregates (keyspace_name text, aggregate_name text,
            argument_types frozen<list<text>>, final_func text, initcond text, return_type text,
            state_func text, state_type text, PRIMARY KEY ((keyspace_name), aggregate_name, argument_types));",
    ),
    // system: what every family shares.
    (
        ALL,
        "CREATE TABLE system.batches (id timeuuid, mutations list<blob>, version int, PRIMARY KEY ((id)));
        CREATE TABLE system.\"IndexInfo\" (table_name text, index_name text, value blob,
            PRIMARY KEY ((table_name), index_name));
        CREATE TABLE system.peers (peer inet, data_center text, host_id uuid, preferred_ip inet, rack text,
            release_version text, rpc_address inet, schema_version uuid, tokens set<text>, PRIMARY KEY ((peer)));
        CREATE TABLE system.sstable_activity (keyspace_name text, columnfamily_name text, generation int,
            rate_120m double, rate_15m double, PRIMARY KEY ((keyspace_name, columnfamily_name, generation)));
        CREATE TABLE system.size_estimates (keyspace_name text, table_name text, range_start text,
            range_end text, mean_partition_size bigint, partitions_count bigint,
            PRIMARY KEY ((keyspace_name), table_name, range_start, range_end));
        CREATE TABLE system.available_ranges (keyspace_name text, ranges set<blob>, PRIMARY KEY ((keyspace_name)));
        CREATE TABLE system.transferred_ranges (operation text, peer inet, keyspace_name text, ranges set<blob>,
            PRIMARY KEY ((operation, keyspace_name), peer));
        CREATE TABLE system.built_views (keyspace_name text, view_name text, status_replicated boolean,
            PRIMARY KEY ((keyspace_name), view_name));
        CREATE TABLE system.prepared_statements (prepared_id blob, logged_keyspace text, query_string text,
            PRIMARY KEY ((prepared_id)));
        CREATE TABLE system_traces.sessions (session_id uuid, command text, client inet, coordinator inet,
            coordinator_port int, duration int, parameters map<text, text>, request text, started_at timestamp,
            PRIMARY KEY ((session_id)));
        CREATE TABLE system_traces.events (session_id uuid, event_id timeuuid, activity text, source inet,
            source_port int, source_elapsed int, thread text, PRIMARY KEY ((session_id), event_id));
        CREATE TABLE system_auth.roles (role text, is_superuser boolean, can_login boolean, salted_hash text,
            member_of set<text>, PRIMARY KEY (role));
        CREATE TABLE system_auth.role_members (role text, member text, PRIMARY KEY (role, member));
        CREATE TABLE system_auth.role_permissions (role text, resource text, permissions set<text>,
            PRIMARY KEY (role, resource));
        CREATE TABLE system_auth.resource_role_permissons_index (resource text, role text,
            PRIMARY KEY (resource, role));
        CREATE TABLE system_distributed.repair_history (keyspace_name text, columnfamily_name text, id timeuuid,
            parent_id timeuuid, range_begin text, range_end text, coordinator inet, coordinator_port int,
            participants set<inet>, participants_v2 set<text>, exception_message text, exception_stacktrace text,
            status text, started_at timestamp, finished_at timestamp,
            PRIMARY KEY ((keyspace_name, columnfamily_name), id));
        CREATE TABLE system_distributed.parent_repair_history (parent_id timeuuid, keyspace_name text,
            columnfamily_names set<text>, started_at timestamp, finished_at timestamp, exception_message text,
            exception_stacktrace text, requested_ranges set<text>, successful_ranges set<text>,
            options map<text, text>, PRIMARY KEY (parent_id));
        CREATE TABLE system_distributed.view_build_status (keyspace_name text, view_name text, host_id uuid,
            status text, PRIMARY KEY ((keyspace_name, view_name), host_id));",
    ),
    // system.paxos: 4.1 added the read ballot (Paxos v2).
    (
        ALL,
        "CREATE TABLE system.paxos (row_key blob, cf_id uuid, in_progress_ballot timeuuid,
            in_progress_read_ballot timeuuid, most_recent_commit blob, most_recent_commit_at timeuuid,
            most_recent_commit_version int, proposal blob, proposal_ballot timeuuid, proposal_version int,
            PRIMARY KEY ((row_key), cf_id));",
    ),
    // 3.x only: the node's tables before 4.0 renamed or widened them, and
    // the batchlog and hints tables 3.0 kept for upgrades from 2.x.
    (
        R3,
        "CREATE TABLE system.local (key text, bootstrapped text, broadcast_address inet, cluster_name text,
            cql_version text, data_center text, gossip_generation int, host_id uuid, listen_address inet,
            native_protocol_version text, partitioner text, rack text, release_version text, rpc_address inet,
            schema_version uuid, thrift_version text, tokens set<text>, truncated_at map<uuid, blob>,
            PRIMARY KEY ((key)));
        CREATE TABLE system.peer_events (peer inet, hints_dropped map<uuid, int>, PRIMARY KEY ((peer)));
        CREATE TABLE system.range_xfers (token_bytes blob, requested_at timestamp, PRIMARY KEY ((token_bytes)));
        CREATE TABLE system.compaction_history (id uuid, bytes_in bigint, bytes_out bigint,
            columnfamily_name text, compacted_at timestamp, keyspace_name text, rows_merged map<int, bigint>,
            PRIMARY KEY ((id)));
        CREATE TABLE system.views_builds_in_progress (keyspace_name text, view_name text, last_token text,
            generation_number int, PRIMARY KEY ((keyspace_name), view_name));
        CREATE TABLE system.hints (target_id uuid, hint_id timeuuid, message_version int, mutation blob,
            PRIMARY KEY ((target_id), hint_id, message_version));
        CREATE TABLE system.batchlog (id uuid, data blob, version int, written_at timestamp, PRIMARY KEY ((id)));",
    ),
    // 4.0 and later: ports everywhere, the v2 tables beside the legacy ones,
    // thrift_version recorded as dropped (with Long.MAX_VALUE, so that any
    // 3.x cell of it is dropped data).
    (
        R4 | R5,
        "CREATE TABLE system.local (key text, bootstrapped text, broadcast_address inet, broadcast_port int,
            cluster_name text, cql_version text, data_center text, gossip_generation int, host_id uuid,
            listen_address inet, listen_port int, native_protocol_version text, partitioner text, rack text,
            release_version text, rpc_address inet, rpc_port int, schema_version uuid, tokens set<text>,
            truncated_at map<uuid, blob>, thrift_version text, PRIMARY KEY ((key)));
        ALTER TABLE system.local DROP thrift_version;
        CREATE TABLE system.peers_v2 (peer inet, peer_port int, data_center text, host_id uuid,
            preferred_ip inet, preferred_port int, rack text, release_version text, native_address inet,
            native_port int, schema_version uuid, tokens set<text>, PRIMARY KEY ((peer), peer_port));
        CREATE TABLE system.table_estimates (keyspace_name text, table_name text, range_type text,
            range_start text, range_end text, mean_partition_size bigint, partitions_count bigint,
            PRIMARY KEY ((keyspace_name), table_name, range_type, range_start, range_end));
        CREATE TABLE system.available_ranges_v2 (keyspace_name text, full_ranges set<blob>,
            transient_ranges set<blob>, PRIMARY KEY ((keyspace_name)));
        CREATE TABLE system.transferred_ranges_v2 (operation text, peer inet, peer_port int,
            keyspace_name text, ranges set<blob>, PRIMARY KEY ((operation, keyspace_name), peer, peer_port));
        CREATE TABLE system.view_builds_in_progress (keyspace_name text, view_name text, start_token text,
            end_token text, last_token text, keys_built bigint,
            PRIMARY KEY ((keyspace_name), view_name, start_token, end_token));
        CREATE TABLE system.repairs (parent_id timeuuid, started_at timestamp, last_update timestamp,
            repaired_at timestamp, state int, coordinator inet, coordinator_port int, participants set<inet>,
            participants_wp set<text>, ranges set<blob>, cfids set<uuid>, PRIMARY KEY (parent_id));
        CREATE TABLE system.paxos_repair_history (keyspace_name text, table_name text,
            points frozen<list<frozen<tuple<blob, timeuuid>>>>, PRIMARY KEY (keyspace_name, table_name));
        CREATE TABLE system.sstable_activity_v2 (keyspace_name text, table_name text, id text,
            rate_120m double, rate_15m double, PRIMARY KEY ((keyspace_name, table_name, id)));
        CREATE TABLE system.top_partitions (keyspace_name text, table_name text, top_type text,
            top frozen<list<frozen<tuple<text, bigint>>>>, last_update timestamp,
            PRIMARY KEY (keyspace_name, table_name, top_type));
        CREATE TABLE system_auth.network_permissions (role text, dcs frozen<set<text>>, PRIMARY KEY (role));
        CREATE TABLE system_distributed.partition_denylist (ks_name text, table_name text, key blob,
            PRIMARY KEY ((ks_name, table_name), key));",
    ),
    // 4.x: uuid where 5.0 says timeuuid (the same 16 bytes).
    (
        R4,
        "CREATE TABLE system.peer_events_v2 (peer inet, peer_port int, hints_dropped map<uuid, int>,
            PRIMARY KEY ((peer), peer_port));
        CREATE TABLE system.peer_events (peer inet, hints_dropped map<uuid, int>, PRIMARY KEY ((peer)));
        CREATE TABLE system.compaction_history (id uuid, bytes_in bigint, bytes_out bigint,
            columnfamily_name text, compacted_at timestamp, keyspace_name text, rows_merged map<int, bigint>,
            PRIMARY KEY ((id)));",
    ),
    // 5.0: timeuuids, compaction properties, mTLS identities and CIDR authorization.
    (
        R5,
        "CREATE TABLE system.peer_events_v2 (peer inet, peer_port int, hints_dropped map<timeuuid, int>,
            PRIMARY KEY ((peer), peer_port));
        CREATE TABLE system.peer_events (peer inet, hints_dropped map<timeuuid, int>, PRIMARY KEY ((peer)));
        CREATE TABLE system.compaction_history (id timeuuid, bytes_in bigint, bytes_out bigint,
            columnfamily_name text, compacted_at timestamp, keyspace_name text, rows_merged map<int, bigint>,
            compaction_properties frozen<map<text, text>>, PRIMARY KEY ((id)));
        CREATE TABLE system_auth.identity_to_role (identity text, role text, PRIMARY KEY (identity));
        CREATE TABLE system_auth.cidr_permissions (role text, cidr_groups frozen<set<text>>, PRIMARY KEY (role));
        CREATE TABLE system_auth.cidr_groups (cidr_group text, cidrs frozen<set<frozen<tuple<inet, smallint>>>>,
            PRIMARY KEY (cidr_group));",
    ),
];

impl Schema {
    /// The tables of Cassandra's own keyspaces for a release family
    /// (see [`SYSTEM_KEYSPACES`]), each with the id Cassandra gives it.
    pub fn system(release: Release) -> Schema {
        let mut schema = Schema::new();
        for ks in SYSTEM_KEYSPACES {
            schema.add_keyspace(ks);
        }
        for &(families, cql) in DEFINITIONS {
            if families & release.bit() != 0 {
                schema.load_cql(cql).expect("the built-in system schema parses");
            }
        }
        let names: Vec<(String, String)> =
            schema.tables().filter(|t| t.id.is_nil()).map(|t| (t.keyspace.clone(), t.name.clone())).collect();
        for (ks, name) in names {
            schema.set_table_id(&ks, &name, system_table_id(&ks, &name)).expect("the table was just added");
        }
        schema
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ids read off real Cassandra 4.0 segments (`../shared/corpus`); the
    /// computation above never saw them.
    #[test]
    fn ids_are_cassandras() {
        for (ks, t, id) in [
            ("system", "local", "7ad54392-bcdd-35a6-8417-4e047860b377"),
            ("system_schema", "columns", "24101c25-a2ae-3af7-87c1-b40ee1aca33f"),
            ("system_schema", "tables", "afddfb9d-bc1e-3068-8056-eed6c302ba09"),
            ("system", "batches", "919a4bc5-7a33-3573-b03e-13fc3f68b465"),
            ("system_auth", "roles", "5bc52802-de25-35ed-aeab-188eecebb090"),
        ] {
            assert_eq!(system_table_id(ks, t).to_string(), id);
        }
    }

    #[test]
    fn every_family_builds_with_ids() {
        for r in [Release::Cassandra3, Release::Cassandra4, Release::Cassandra5] {
            let s = Schema::system(r);
            assert!(s.tables().all(|t| t.id == system_table_id(&t.keyspace, &t.name)));
            assert!(s.table("system", "local").is_some());
            for t in SYSTEM_SCHEMA_TABLES {
                assert!(s.table("system_schema", t).is_some(), "{t}");
            }
        }
        let s4 = Schema::system(Release::Cassandra4);
        let local = s4.table("system", "local").unwrap();
        assert_eq!(local.dropped[0].name, "thrift_version");
        assert_eq!(local.dropped[0].dropped_at, i64::MAX);
    }
}
