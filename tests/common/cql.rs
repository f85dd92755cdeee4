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
