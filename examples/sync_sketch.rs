//! A sync tool in one page: `sync_sketch CDC_RAW_DIR CHECKPOINT_FILE [IDLE_EXIT_SECS]` follows a
//! `cdc_raw` (schema from the log), writes one JSON record per change (kind, table, key, columns or range,
//! source position) and schema changes and truncations as `dump` does, checkpoints each batch, resumes.
use cassandra_commitlog::cdc::{CheckpointFile, Event, WatchOptions, Watcher};
use cassandra_commitlog::mutation::{Change, Decoder, Row};
use cassandra_commitlog::schema::SYSTEM_KEYSPACES;
use std::error::Error;
use std::io::Write;
use std::time::Duration;

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, checkpoint, ..] = &args[..] else { return Err("usage: CDC_RAW_DIR CHECKPOINT_FILE [IDLE_SECS]".into()) };
    let idle = args.get(2).map(|s| s.parse().map(Duration::from_secs)).transpose()?;
    let checkpoints = CheckpointFile::new(checkpoint); // the position and the schema, saved together
    let opts = WatchOptions::schema_from_log(dir).start(checkpoints.load()?).idle_timeout(idle);
    let (mut watcher, mut decoder, mut out) = (Watcher::new(opts)?, Decoder::new(), std::io::stdout().lock());
    while let Some(event) = watcher.next_event()? {
        let Event::Batch(batch) = event else {
            eprintln!("{event:?}"); // losses, damage, cleanups: nothing is lost silently
            continue;
        };
        for i in 0..batch.len() {
            let m = batch.decode(i, &mut decoder).map_err(|u| u.error)?;
            let source = format!(r#""segment_id":{},"position":{}"#, m.segment_id(), m.position());
            for update in m.updates().filter(|u| !SYSTEM_KEYSPACES.contains(&u.table().keyspace.as_str())) {
                let table = serde_json::to_string(&[&update.table().keyspace, &update.table().name])?;
                for change in update.changes() {
                    let (kind, key, body) = match change {
                        Change::Row { kind, row } => {
                            (kind.name(), row.primary_key()?, format!(r#","columns":{{{}}}"#, columns(&row)?))
                        }
                        Change::PartitionDelete(_) => ("delete_partition", update.key()?, String::new()),
                        Change::RangeDelete(range) => {
                            ("delete_range", update.key()?, format!(r#","range":{}"#, range.to_json()))
                        }
                        _ => continue,
                    };
                    writeln!(out, r#"{{"kind":"{kind}","table":{table},"key":{}{body},{source}}}"#, key.to_json()?)?;
                }
            }
        }
        for event in &batch.schema_events {
            writeln!(out, "{}", serde_json::to_string(event)?)?; // a truncate: clear the sink's copy
        }
        out.flush()?;
        checkpoints.save(&batch.checkpoint())?;
        watcher.ack(batch.to);
    }
    Ok(())
}

/// The row's columns (not those of dropped data), each as one merged value.
fn columns(row: &Row<'_>) -> Result<String, Box<dyn Error>> {
    let live = row.columns().filter(|c| !c.cells().any(|cell| cell.is_dropped()));
    let json = live.map(|c| Ok(format!("{}:{}", serde_json::to_string(c.name())?, c.merged()?.to_json()?)));
    Ok(json.collect::<Result<Vec<_>, Box<dyn Error>>>()?.join(","))
}
