//! Decoded views back to builder specs: what a round trip compares.

#![allow(dead_code)]

use cassandra_commitlog::builder::{CellKind, CellSpec, ColumnSpec, MarkerSpec, RowSpec, Unfiltered, UpdateSpec};
use cassandra_commitlog::mutation::{Cell, Mutation, PartitionUpdate, Row};

fn cell(c: &Cell<'_>) -> CellSpec {
    let kind = if let Some(ldt) = c.local_deletion_time() {
        CellKind::Tombstone { local_deletion_time: ldt }
    } else if let Some((ttl, expires_at)) = c.expiry() {
        CellKind::Expiring { ttl, expires_at }
    } else {
        CellKind::Live
    };
    CellSpec {
        timestamp: c.timestamp(),
        kind,
        path: c.path_bytes().map(<[u8]>::to_vec),
        value: c.value_bytes().to_vec(),
    }
}

pub fn row(r: &Row<'_>) -> RowSpec {
    RowSpec {
        clustering: r.clustering_bytes().map(|v| v.map(<[u8]>::to_vec)).collect(),
        liveness: r.liveness(),
        deletion: r.deletion().map(|d| (d.time, d.shadowable)),
        columns: r
            .columns()
            .map(|c| {
                let spec = if c.is_complex() {
                    ColumnSpec::Complex { deletion: c.complex_deletion(), cells: c.cells().map(|x| cell(&x)).collect() }
                } else {
                    ColumnSpec::Simple(cell(&c.cells().next().expect("a simple column has its cell")))
                };
                (c.name().to_owned(), spec)
            })
            .collect(),
    }
}

pub fn update(u: &PartitionUpdate<'_>) -> UpdateSpec {
    let mut unfiltereds: Vec<(u32, Unfiltered)> = u.rows().map(|r| (r.index(), Unfiltered::Row(row(&r)))).collect();
    for m in u.markers() {
        let spec = MarkerSpec {
            kind: m.kind(),
            values: m.clustering().clustering_bytes().map(|v| v.map(<[u8]>::to_vec)).collect(),
            deletion: m.deletion().expect("markers carry a deletion"),
            start_deletion: m.start_deletion(),
        };
        unfiltereds.push((m.index(), Unfiltered::Marker(spec)));
    }
    unfiltereds.sort_by_key(|(i, _)| *i);
    UpdateSpec {
        table_id: u.table_id(),
        key: u.partition_key_bytes().to_vec(),
        deletion: u.partition_deletion(),
        static_row: u.static_row().map(|r| row(&r)),
        unfiltereds: unfiltereds.into_iter().map(|(_, x)| x).collect(),
    }
}

pub fn mutation(m: &Mutation<'_>) -> Vec<UpdateSpec> {
    m.updates().map(|u| update(&u)).collect()
}
