//! What the corpus's CQL statements should produce, read off their text
//! (independently of the crate).

use std::collections::BTreeMap;

/// What a statement should produce, read off its CQL.
pub fn expected_kind(cql: &str, clustering: &BTreeMap<&str, &[&str]>) -> Option<&'static str> {
    let words: Vec<&str> = cql.split_whitespace().collect();
    match words.first().copied()? {
        // An INSERT of static columns only writes the static row, which
        // carries no row marker: the log holds an update of it.
        "INSERT" if words[2] == "cdc_test.clustered" && !cql.contains("ck1") => Some("update"),
        "INSERT" => Some("insert"),
        "UPDATE" => Some("update"),
        "DELETE" if words.get(1) != Some(&"FROM") => Some("update"),
        "DELETE" => {
            let table = words[2].strip_prefix("cdc_test.")?;
            let (_, condition) = cql.split_once(" WHERE ")?;
            if condition.contains('<') || condition.contains('>') {
                return Some("range_delete");
            }
            let ck = clustering.get(table).copied().unwrap_or_default();
            let given = ck.iter().filter(|c| condition.contains(&format!("{c} ="))).count();
            Some(if ck.is_empty() || given == 0 {
                "partition_delete"
            } else if given == ck.len() {
                "delete"
            } else {
                "range_delete"
            })
        }
        _ => None,
    }
}

/// The primary key columns of each `CREATE TABLE` of a statement list:
/// table name to (partition key columns, clustering columns).
pub fn primary_keys(statements: &[String]) -> BTreeMap<String, (Vec<String>, Vec<String>)> {
    let mut keys = BTreeMap::new();
    for (table, body) in create_tables(statements) {
        let (partition, clustering) = if let Some((_, pk)) = body.split_once("PRIMARY KEY (") {
            let pk = &pk[..pk.rfind(')').unwrap()];
            let (partition, rest) = match pk.strip_prefix('(') {
                Some(inner) => inner.split_once(')').unwrap(),
                None => pk.split_once(',').unwrap_or((pk, "")),
            };
            let names = |s: &str| s.split(',').map(str::trim).filter(|c| !c.is_empty()).map(str::to_owned).collect();
            (names(partition), names(rest))
        } else {
            // `id int PRIMARY KEY`
            let col = body.split(',').find(|c| c.contains("PRIMARY KEY")).unwrap();
            (vec![col.split_whitespace().next().unwrap().to_owned()], vec![])
        };
        keys.insert(table, (partition, clustering));
    }
    keys
}

/// The static and the regular columns of each `CREATE TABLE`: table name to
/// (static columns, regular columns).
pub fn static_and_regular(statements: &[String]) -> BTreeMap<String, (Vec<String>, Vec<String>)> {
    let keys = primary_keys(statements);
    let mut out = BTreeMap::new();
    for (table, body) in create_tables(statements) {
        // Column definitions: split at the commas outside <...> and (...).
        let (mut defs, mut depth, mut start) = (Vec::new(), 0i32, 0);
        for (i, ch) in body.char_indices() {
            match ch {
                '<' | '(' => depth += 1,
                '>' | ')' => depth -= 1,
                ',' if depth == 0 => {
                    defs.push(&body[start..i]);
                    start = i + 1;
                }
                _ => {}
            }
        }
        defs.push(&body[start..]);
        let (partition, clustering) = &keys[&table];
        let (mut statics, mut regulars) = (Vec::new(), Vec::new());
        for def in defs.iter().map(|d| d.trim()).filter(|d| !d.starts_with("PRIMARY KEY")) {
            let words: Vec<&str> = def.split_whitespace().collect();
            let name = words[0].to_owned();
            if partition.contains(&name) || clustering.contains(&name) {
                continue;
            }
            if words.last() == Some(&"static") { statics.push(name) } else { regulars.push(name) }
        }
        out.insert(table, (statics, regulars));
    }
    out
}

/// Each `CREATE TABLE`'s table name and column list.
fn create_tables(statements: &[String]) -> impl Iterator<Item = (String, &str)> {
    statements.iter().filter_map(|cql| {
        let (name, body) = cql.strip_prefix("CREATE TABLE ")?.split_once(" (")?;
        Some((name.rsplit('.').next()?.to_owned(), body.split(") WITH").next()?))
    })
}

/// What a capture's statements should produce: per (table, kind) the
/// number of changes (kinds as [`expected_kind`] names them; a write of
/// static and regular columns of a row also updates the static row), with
/// the tables' primary keys.
#[allow(clippy::type_complexity)]
pub fn expected_changes(
    capture: &std::path::Path,
) -> (BTreeMap<(String, &'static str), usize>, BTreeMap<String, (Vec<String>, Vec<String>)>) {
    let statements: Vec<serde_json::Value> = std::fs::read_to_string(capture.join("expected.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let cql = |s: &serde_json::Value| s["cql_as_sent"].as_str().or(s["cql"].as_str()).unwrap().to_owned();
    let texts: Vec<String> = statements.iter().map(cql).collect();
    let (keys, columns) = (primary_keys(&texts), static_and_regular(&texts));
    let clustering_names: Vec<(String, Vec<&str>)> =
        keys.iter().map(|(t, (_, c))| (t.clone(), c.iter().map(String::as_str).collect())).collect();
    let clustering: BTreeMap<&str, &[&str]> =
        clustering_names.iter().map(|(t, c)| (t.as_str(), c.as_slice())).collect();
    let mut want: BTreeMap<(String, &'static str), usize> = BTreeMap::new();
    for s in &statements {
        if s["kind"] == "ddl" {
            continue;
        }
        let text = cql(s);
        let body = if s["kind"] == "batch" { text.split_once('\n').unwrap().1 } else { &text };
        for stmt in body.split(';').map(str::trim).filter(|s| !s.is_empty() && *s != "APPLY BATCH") {
            let kind = expected_kind(stmt, &clustering).unwrap_or_else(|| panic!("{stmt}"));
            let table = stmt.split_whitespace().find_map(|w| w.strip_prefix("cdc_test.")).unwrap();
            *want.entry((table.to_owned(), kind)).or_default() += 1;
            // A write of static and regular columns of a row writes the
            // static row besides the row: an update of its own.
            let (statics, regulars) = &columns[table];
            let names: Vec<&str> =
                stmt.split(|c: char| !(c.is_alphanumeric() || c == '_')).filter(|w| !w.is_empty()).collect();
            let mentions = |cols: &[String]| cols.iter().any(|c| names.contains(&c.as_str()));
            if matches!(kind, "insert" | "update") && mentions(statics) && mentions(regulars) {
                *want.entry((table.to_owned(), "update")).or_default() += 1;
            }
        }
    }
    (want, keys)
}
