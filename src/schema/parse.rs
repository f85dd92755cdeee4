//! The CQL DDL parser (nom): `CREATE KEYSPACE/TYPE/TABLE` as `DESCRIBE` and
//! the drivers print them, `WITH ID = <uuid>`, and `ALTER TABLE ... DROP ...
//! USING TIMESTAMP` / `ALTER TABLE ... ADD` as `DESCRIBE ... WITH INTERNALS`
//! prints dropped columns. Options the reader does not need are skipped;
//! other statements (indexes, views, functions, grants...) are skipped whole.

use nom::branch::alt;
use nom::bytes::complete::{tag_no_case, take_until, take_while, take_while1};
use nom::character::complete::{char, digit1};
use nom::combinator::{opt, recognize};
use nom::error::{ErrorKind, ParseError};
use nom::sequence::pair;
use nom::{IResult, Parser};
use uuid::Uuid;

use super::table::{Order, Schema, Table, TableError};
use super::types::{CqlType, MAX_TYPE_DEPTH, UserType};

/// Why CQL text could not be loaded as a schema.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SchemaError {
    /// The text does not parse.
    #[error("line {line}, column {column}: expected {expected}, found {found:?}")]
    Syntax {
        /// 1-based line.
        line: usize,
        /// 1-based column (in characters).
        column: usize,
        /// What the parser expected there.
        expected: &'static str,
        /// Up to 32 characters found there.
        found: String,
    },
    /// A type name that is neither a CQL type nor a user type defined before.
    #[error("line {line}: unknown type {name:?}")]
    UnknownType {
        /// 1-based line of the statement.
        line: usize,
        /// The name.
        name: String,
    },
    /// A type nested deeper than [`MAX_TYPE_DEPTH`].
    #[error("line {line}: types nested deeper than {MAX_TYPE_DEPTH}")]
    TooDeep {
        /// 1-based line of the statement.
        line: usize,
    },
    /// A table or type name without a keyspace, and no `USE` or `CREATE KEYSPACE` before it.
    #[error("line {line}: {name:?} has no keyspace and none is in use")]
    NoKeyspace {
        /// 1-based line of the statement.
        line: usize,
        /// The name.
        name: String,
    },
    /// The statement parses but does not make a valid table.
    #[error("line {line}: {source}")]
    Table {
        /// 1-based line of the statement.
        line: usize,
        /// What is wrong.
        #[source]
        source: TableError,
    },
}

/// A parse error: where, and what was expected there.
#[derive(Debug, Clone, Copy)]
struct PErr<'a> {
    at: &'a str,
    expected: &'static str,
}

impl<'a> ParseError<&'a str> for PErr<'a> {
    fn from_error_kind(input: &'a str, _kind: ErrorKind) -> Self {
        PErr { at: input, expected: "valid CQL" }
    }
    fn append(_input: &'a str, _kind: ErrorKind, other: Self) -> Self {
        other
    }
}

type Res<'a, T> = IResult<&'a str, T, PErr<'a>>;

fn fail<'a, T>(at: &'a str, expected: &'static str) -> Res<'a, T> {
    Err(nom::Err::Error(PErr { at, expected }))
}

/// Gives a parser's failure a name for the error message.
fn expect<'a, T>(
    expected: &'static str,
    mut p: impl Parser<&'a str, Output = T, Error = PErr<'a>>,
) -> impl FnMut(&'a str) -> Res<'a, T> {
    move |i| p.parse(i).map_err(|e| e.map(|err| PErr { at: err.at, expected }))
}

/// Whitespace and comments (`--`, `//`, `/* */`).
fn ws(mut i: &str) -> Res<'_, ()> {
    loop {
        let t = i.trim_start();
        if let Some(rest) = t.strip_prefix("--").or_else(|| t.strip_prefix("//")) {
            i = rest.find('\n').map_or("", |n| &rest[n..]);
        } else if let Some(rest) = t.strip_prefix("/*") {
            match rest.find("*/") {
                Some(n) => i = &rest[n + 2..],
                None => return fail(t, "the end of a comment"),
            }
        } else {
            return Ok((t, ()));
        }
    }
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// A keyword (case-insensitive, not followed by an identifier character).
fn kw<'a>(word: &'static str) -> impl FnMut(&'a str) -> Res<'a, ()> {
    move |i| {
        let (i, _) = ws(i)?;
        let (rest, _) = tag_no_case(word)(i).or_else(|_: nom::Err<PErr<'a>>| fail(i, word))?;
        if rest.starts_with(is_ident_char) {
            return fail(i, word);
        }
        Ok((rest, ()))
    }
}

fn sym<'a>(c: char, expected: &'static str) -> impl FnMut(&'a str) -> Res<'a, ()> {
    move |i| {
        let (i, _) = ws(i)?;
        let (i, _) = char::<&str, PErr<'a>>(c)(i).or_else(|_| fail(i, expected))?;
        Ok((i, ()))
    }
}

/// An identifier: unquoted (lower-cased) or `"quoted"` (kept, `""` escapes `"`).
fn ident(i: &str) -> Res<'_, String> {
    let (i, _) = ws(i)?;
    if let Some(rest) = i.strip_prefix('"') {
        return quoted(rest, '"', "a closing double quote");
    }
    let (rest, name) = recognize(pair(
        take_while1::<_, &str, PErr>(|c: char| c.is_ascii_alphabetic() || c == '_'),
        take_while(is_ident_char),
    ))
    .parse(i)
    .or_else(|_| fail(i, "an identifier"))?;
    Ok((rest, name.to_ascii_lowercase()))
}

/// `name` or `keyspace.name`.
fn qualified(i: &str) -> Res<'_, (Option<String>, String)> {
    let (i, first) = ident(i)?;
    let (i, dot) = opt(sym('.', ".")).parse(i)?;
    if dot.is_some() {
        let (i, second) = ident(i)?;
        Ok((i, (Some(first), second)))
    } else {
        Ok((i, (None, first)))
    }
}

/// `'text'` with `''` escaping a quote.
fn string_lit(i: &str) -> Res<'_, String> {
    let (i, _) = ws(i)?;
    let Some(rest) = i.strip_prefix('\'') else { return fail(i, "a string literal") };
    quoted(rest, '\'', "a closing quote")
}

/// The text of a quoted identifier or string, after its opening `quote`:
/// up to the closing one, a doubled `quote` standing for one.
fn quoted<'a>(mut rest: &'a str, quote: char, expected: &'static str) -> Res<'a, String> {
    let mut s = String::new();
    loop {
        let (r, chunk) = take_while(|c| c != quote)(rest)?;
        s.push_str(chunk);
        let Some(r) = r.strip_prefix(quote) else { return fail(r, expected) };
        match r.strip_prefix(quote) {
            Some(r) => {
                s.push(quote);
                rest = r;
            }
            None => return Ok((r, s)),
        }
    }
}

fn integer(i: &str) -> Res<'_, i64> {
    let (i, _) = ws(i)?;
    let (rest, text) =
        recognize(pair(opt(char('-')), digit1)).parse(i).or_else(|_: nom::Err<PErr>| fail(i, "an integer"))?;
    match text.parse() {
        Ok(n) => Ok((rest, n)),
        Err(_) => fail(i, "an integer that fits 64 bits"),
    }
}

fn uuid_lit(i: &str) -> Res<'_, Uuid> {
    let (i, _) = ws(i)?;
    let (rest, text) =
        take_while1::<_, &str, PErr>(|c: char| c.is_ascii_hexdigit() || c == '-')(i).or_else(|_| fail(i, "a UUID"))?;
    match Uuid::try_parse(text) {
        Ok(u) => Ok((rest, u)),
        Err(_) => fail(i, "a UUID"),
    }
}

/// A type as written, before user types are resolved.
#[derive(Debug, Clone)]
enum RawType {
    Scalar(CqlType),
    List(Box<RawType>),
    Set(Box<RawType>),
    Map(Box<RawType>, Box<RawType>),
    Tuple(Vec<RawType>),
    Vector(Box<RawType>, u32),
    Named(Option<String>, String),
    Custom(String),
    Frozen(Box<RawType>),
}

/// Items separated by commas, up to and including `close` (the opening
/// bracket already read).
fn list_until<'a, T>(
    mut i: &'a str,
    close: char,
    expected: &'static str,
    mut item: impl FnMut(&'a str) -> Res<'a, T>,
) -> Res<'a, Vec<T>> {
    let mut out = Vec::new();
    loop {
        let (r, v) = item(i)?;
        out.push(v);
        let (r, _) = ws(r)?;
        if let Some(r) = r.strip_prefix(',') {
            i = r;
        } else if let Some(r) = r.strip_prefix(close) {
            return Ok((r, out));
        } else {
            return fail(r, expected);
        }
    }
}

fn type_args(i: &str, depth: usize) -> Res<'_, Vec<RawType>> {
    let (i, _) = sym('<', "'<'")(i)?;
    list_until(i, '>', "',' or '>'", |i| cql_type(r_depth(i, depth)?)(i))
}

fn r_depth(i: &str, depth: usize) -> Result<usize, nom::Err<PErr<'_>>> {
    if depth >= MAX_TYPE_DEPTH {
        return Err(nom::Err::Failure(PErr { at: i, expected: "a type nested at most 32 deep" }));
    }
    Ok(depth + 1)
}

fn cql_type(depth: usize) -> impl FnMut(&str) -> Res<'_, RawType> {
    move |i| {
        let (i, _) = ws(i)?;
        if i.starts_with('\'') {
            let (i, class) = string_lit(i)?;
            return Ok((i, RawType::Custom(class)));
        }
        let (after_name, (ks, name)) = qualified(i)?;
        if ks.is_none() {
            let args = |n: usize| {
                move |i| {
                    let (r, a) = type_args(i, depth)?;
                    if a.len() != n { fail(i, "the right number of type arguments") } else { Ok((r, a)) }
                }
            };
            match name.as_str() {
                "frozen" => {
                    let (r, mut a) = args(1)(after_name)?;
                    return Ok((r, RawType::Frozen(Box::new(a.remove(0)))));
                }
                "list" | "set" => {
                    let (r, mut a) = args(1)(after_name)?;
                    let e = Box::new(a.remove(0));
                    return Ok((r, if name == "list" { RawType::List(e) } else { RawType::Set(e) }));
                }
                "map" => {
                    let (r, mut a) = args(2)(after_name)?;
                    let v = Box::new(a.remove(1));
                    return Ok((r, RawType::Map(Box::new(a.remove(0)), v)));
                }
                "tuple" => {
                    let (r, a) = type_args(after_name, depth)?;
                    return Ok((r, RawType::Tuple(a)));
                }
                "vector" => {
                    let (r, _) = sym('<', "'<'")(after_name)?;
                    let (r, elem) = cql_type(r_depth(r, depth)?)(r)?;
                    let (r, _) = sym(',', "','")(r)?;
                    let (r, dim) = integer(r)?;
                    let (r, _) = sym('>', "'>'")(r)?;
                    let Ok(dim) = u32::try_from(dim) else { return fail(r, "a vector dimension") };
                    return Ok((r, RawType::Vector(Box::new(elem), dim)));
                }
                _ => {
                    if let Some(t) = CqlType::from_scalar_name(&name) {
                        return Ok((after_name, RawType::Scalar(t)));
                    }
                }
            }
        }
        Ok((after_name, RawType::Named(ks, name)))
    }
}

/// Skips an option value: a literal, a name, or a balanced `{}`/`()`/`[]` group.
/// Groups are tracked on a stack of closing brackets, not by recursion, so
/// that no nesting in the text can exhaust the call stack.
fn skip_value(mut i: &str) -> Res<'_, ()> {
    let mut closers = Vec::new();
    loop {
        i = ws(i)?.0;
        if let Some(&close) = closers.last() {
            if let Some(r) = i.strip_prefix(close) {
                closers.pop();
                i = r;
                if closers.is_empty() {
                    return Ok((i, ()));
                }
                continue;
            }
            if let Some(r) = i.strip_prefix([',', ':']) {
                i = r;
                continue;
            }
            if i.is_empty() {
                return fail(i, "a closing bracket");
            }
        }
        let close = match i.chars().next() {
            Some('{') => Some('}'),
            Some('(') => Some(')'),
            Some('[') => Some(']'),
            _ => None,
        };
        if let Some(close) = close {
            closers.push(close);
            i = &i[1..];
            continue;
        }
        i = if i.starts_with('\'') {
            string_lit(i)?.0
        } else {
            take_while1::<_, &str, PErr>(|c: char| is_ident_char(c) || matches!(c, '.' | '-' | '+'))(i)
                .or_else(|_| fail(i, "an option value"))?
                .0
        };
        if closers.is_empty() {
            return Ok((i, ()));
        }
    }
}

/// Skips a statement up to and including its `;`, stepping over strings,
/// quoted names and `$$` bodies.
fn skip_statement(mut i: &str) -> Res<'_, ()> {
    loop {
        let (r, _) = ws(i)?;
        i = r;
        match i.chars().next() {
            None => return Ok((i, ())),
            Some(';') => return Ok((&i[1..], ())),
            Some('\'') => i = string_lit(i)?.0,
            Some('"') => i = ident(i)?.0,
            Some('$') if i.starts_with("$$") => {
                let (r, _) =
                    take_until::<_, &str, PErr>("$$")(&i[2..]).or_else(|_| fail(i, "the end of a $$ block"))?;
                i = &r[2..];
            }
            Some(c) => i = &i[c.len_utf8()..],
        }
    }
}

enum Stmt {
    Keyspace(String),
    Use(String),
    Type { ks: Option<String>, name: String, fields: Vec<(String, RawType)> },
    AlterTypeAdd { ks: Option<String>, name: String, field: String, ty: RawType },
    Table(TableDef),
    Drop { ks: Option<String>, table: String, columns: Vec<String>, at: Option<i64> },
    Add { ks: Option<String>, table: String, columns: Vec<(String, RawType, bool)> },
    Skipped,
}

struct TableDef {
    ks: Option<String>,
    name: String,
    columns: Vec<(String, RawType, bool)>,
    inline_pk: Option<String>,
    partition_key: Vec<String>,
    clustering: Vec<String>,
    orders: Vec<(String, Order)>,
    id: Option<Uuid>,
}

fn if_not_exists(i: &str) -> Res<'_, ()> {
    let (i, found) = opt(kw("if")).parse(i)?;
    if found.is_some() {
        let (i, _) = kw("not")(i)?;
        let (i, _) = kw("exists")(i)?;
        return Ok((i, ()));
    }
    Ok((i, ()))
}

fn ident_list(i: &str) -> Res<'_, Vec<String>> {
    let (i, _) = sym('(', "'('")(i)?;
    list_until(i, ')', "',' or ')'", ident)
}

fn primary_key(i: &str) -> Res<'_, (Vec<String>, Vec<String>)> {
    let (i, _) = sym('(', "'('")(i)?;
    let (i, _) = ws(i)?;
    let (mut i, partition) = if i.starts_with('(') { ident_list(i)? } else { ident(i).map(|(r, n)| (r, vec![n]))? };
    let mut clustering = Vec::new();
    loop {
        let (r, _) = ws(i)?;
        if let Some(r) = r.strip_prefix(',') {
            let (r, name) = ident(r)?;
            clustering.push(name);
            i = r;
        } else if let Some(r) = r.strip_prefix(')') {
            return Ok((r, (partition, clustering)));
        } else {
            return fail(r, "',' or ')'");
        }
    }
}

fn create_table(i: &str) -> Res<'_, Stmt> {
    let (i, _) = if_not_exists(i)?;
    let (i, (ks, name)) = expect("a table name", qualified)(i)?;
    let (mut i, _) = sym('(', "'('")(i)?;
    let mut def = TableDef {
        ks,
        name,
        columns: Vec::new(),
        inline_pk: None,
        partition_key: Vec::new(),
        clustering: Vec::new(),
        orders: Vec::new(),
        id: None,
    };
    loop {
        let (r, _) = ws(i)?;
        if let Some(r) = r.strip_prefix(')') {
            i = r;
            break;
        }
        if let Ok((r, _)) = pair(kw("primary"), kw("key")).parse(r) {
            let (r, (pk, ck)) = primary_key(r)?;
            def.partition_key = pk;
            def.clustering = ck;
            i = r;
        } else {
            let (r, col) = ident(r)?;
            let (r, ty) = cql_type(0)(r)?;
            let (r, is_static) = opt(kw("static")).parse(r)?;
            let (r, inline) = opt(pair(kw("primary"), kw("key"))).parse(r)?;
            if inline.is_some() {
                def.inline_pk = Some(col.clone());
            }
            def.columns.push((col, ty, is_static.is_some()));
            i = r;
        }
        let (r, _) = ws(i)?;
        if let Some(r) = r.strip_prefix(',') {
            i = r;
        } else if !r.starts_with(')') {
            return fail(r, "',' or ')'");
        } else {
            i = r;
        }
    }
    if let Ok((r, _)) = kw("with")(i) {
        i = r;
        loop {
            if let Ok((r, _)) = pair(kw("clustering"), pair(kw("order"), kw("by"))).parse(i) {
                let (r, _) = sym('(', "'('")(r)?;
                let (r, orders) = list_until(r, ')', "',' or ')'", |i| {
                    let (i, col) = ident(i)?;
                    let (i, order) =
                        opt(alt((kw("desc").map(|_| Order::Desc), kw("asc").map(|_| Order::Asc)))).parse(i)?;
                    Ok((i, (col, order.unwrap_or(Order::Asc))))
                })?;
                def.orders.extend(orders);
                i = r;
            } else if let Ok((r, _)) = pair(kw("compact"), kw("storage")).parse(i) {
                i = r;
            } else {
                let (r, key) = ident(i)?;
                let (r, _) = sym('=', "'='")(r)?;
                if key == "id" {
                    let (r, id) = uuid_lit(r)?;
                    def.id = Some(id);
                    i = r;
                } else {
                    i = skip_value(r)?.0;
                }
            }
            match kw("and")(i) {
                Ok((r, _)) => i = r,
                Err(_) => break,
            }
        }
    }
    Ok((i, Stmt::Table(def)))
}

fn create_type(i: &str) -> Res<'_, Stmt> {
    let (i, _) = if_not_exists(i)?;
    let (i, (ks, name)) = expect("a type name", qualified)(i)?;
    let (i, _) = sym('(', "'('")(i)?;
    let (i, fields) = list_until(i, ')', "',' or ')'", |i| {
        let (i, field) = ident(i)?;
        let (i, ty) = cql_type(0)(i)?;
        Ok((i, (field, ty)))
    })?;
    Ok((i, Stmt::Type { ks, name, fields }))
}

fn alter_table(i: &str) -> Res<'_, Stmt> {
    let (i, (ks, table)) = expect("a table name", qualified)(i)?;
    if let Ok((r, _)) = kw("drop")(i) {
        let (r, _) = ws(r)?;
        let (r, columns) = if r.starts_with('(') { ident_list(r)? } else { ident(r).map(|(r, c)| (r, vec![c]))? };
        let (r, at) = opt(|i| {
            let (i, _) = kw("using")(i)?;
            let (i, _) = kw("timestamp")(i)?;
            integer(i)
        })
        .parse(r)?;
        return Ok((r, Stmt::Drop { ks, table, columns, at }));
    }
    if let Ok((r, _)) = kw("add")(i) {
        let (r, _) = ws(r)?;
        let one = |i| {
            let (i, name) = ident(i)?;
            let (i, ty) = cql_type(0)(i)?;
            let (i, st) = opt(kw("static")).parse(i)?;
            Ok((i, (name, ty, st.is_some())))
        };
        if let Some(r) = r.strip_prefix('(') {
            let (r, columns) = list_until(r, ')', "',' or ')'", one)?;
            return Ok((r, Stmt::Add { ks, table, columns }));
        }
        let (r, c) = one(r)?;
        return Ok((r, Stmt::Add { ks, table, columns: vec![c] }));
    }
    Ok((skip_statement(i)?.0, Stmt::Skipped))
}

fn statement(i: &str) -> Res<'_, Stmt> {
    if let Ok((r, _)) = kw("create")(i) {
        if let Ok((r, _)) = kw("keyspace")(r) {
            let (r, _) = if_not_exists(r)?;
            let (r, name) = ident(r)?;
            return Ok((skip_statement(r)?.0, Stmt::Keyspace(name)));
        }
        if let Ok((r, _)) = kw("type")(r) {
            return create_type(r);
        }
        if let Ok((r, _)) = alt((kw("table"), kw("columnfamily"))).parse(r) {
            return create_table(r);
        }
        return Ok((skip_statement(r)?.0, Stmt::Skipped));
    }
    if let Ok((r, _)) = kw("alter")(i) {
        if let Ok((r, _)) = alt((kw("table"), kw("columnfamily"))).parse(r) {
            return alter_table(r);
        }
        if let Ok((r, _)) = kw("type")(r) {
            let (r, (ks, name)) = qualified(r)?;
            if let Ok((r, _)) = kw("add")(r) {
                let (r, field) = ident(r)?;
                let (r, ty) = cql_type(0)(r)?;
                return Ok((r, Stmt::AlterTypeAdd { ks, name, field, ty }));
            }
            return Ok((skip_statement(r)?.0, Stmt::Skipped));
        }
        return Ok((skip_statement(r)?.0, Stmt::Skipped));
    }
    if let Ok((r, _)) = kw("use")(i) {
        let (r, ks) = ident(r)?;
        return Ok((r, Stmt::Use(ks)));
    }
    let (r, _) = ws(i)?;
    if r.is_empty() {
        return fail(r, "a statement");
    }
    Ok((skip_statement(r)?.0, Stmt::Skipped))
}

/// 1-based line and column of `rest` within `text`.
fn line_col(text: &str, rest: &str) -> (usize, usize) {
    let offset = text.len() - rest.len();
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// Resolves a type as written against the user types of `schema`
/// (`top`: the type of a column, where collections and UDTs are multi-cell
/// unless frozen).
fn resolve(schema: &Schema, raw: &RawType, ks: &str, top: bool, line: usize) -> Result<CqlType, SchemaError> {
    let nested = |t: &RawType| resolve(schema, t, ks, false, line).map(Box::new);
    let t = match raw {
        RawType::Scalar(t) => t.clone(),
        RawType::Custom(c) => CqlType::Custom(c.clone()),
        RawType::Frozen(inner) => return Ok(resolve(schema, inner, ks, top, line)?.frozen()),
        RawType::List(e) => CqlType::List { elem: nested(e)?, frozen: !top },
        RawType::Set(e) => CqlType::Set { elem: nested(e)?, frozen: !top },
        RawType::Map(k, v) => CqlType::Map { key: nested(k)?, value: nested(v)?, frozen: !top },
        RawType::Tuple(ts) => {
            CqlType::Tuple(ts.iter().map(|t| resolve(schema, t, ks, false, line)).collect::<Result<_, _>>()?)
        }
        RawType::Vector(e, dim) => CqlType::Vector { elem: nested(e)?, dim: *dim },
        RawType::Named(tks, name) => {
            let tks = tks.as_deref().unwrap_or(ks);
            let def =
                schema.user_type(tks, name).ok_or_else(|| SchemaError::UnknownType { line, name: name.clone() })?;
            CqlType::Udt { def: def.clone(), frozen: !top }
        }
    };
    if t.depth() > MAX_TYPE_DEPTH {
        return Err(SchemaError::TooDeep { line });
    }
    Ok(t)
}

/// Parses a type as `system_schema` stores it (`frozen<map<int, text>>`,
/// `address`, `'org.example.Custom'`): user types are looked up in `keyspace`
/// of `schema`; `top` as for a column's type.
pub(crate) fn parse_type(text: &str, keyspace: &str, schema: &Schema, top: bool) -> Result<CqlType, SchemaError> {
    let (rest, raw) = cql_type(0)(text).map_err(|e| syntax(text, e))?;
    let (rest, _) = ws(rest).map_err(|e| syntax(text, e))?;
    if !rest.is_empty() {
        return Err(syntax(text, nom::Err::Error(PErr { at: rest, expected: "the end of the type" })));
    }
    resolve(schema, &raw, keyspace, top, 1)
}

struct Loader<'s> {
    schema: &'s mut Schema,
    current_ks: Option<String>,
    line: usize,
}

impl Loader<'_> {
    fn keyspace(&self, ks: Option<String>, name: &str) -> Result<String, SchemaError> {
        ks.or_else(|| self.current_ks.clone())
            .ok_or_else(|| SchemaError::NoKeyspace { line: self.line, name: name.to_owned() })
    }

    fn resolve(&self, raw: &RawType, ks: &str, top: bool) -> Result<CqlType, SchemaError> {
        resolve(self.schema, raw, ks, top, self.line)
    }

    fn apply(&mut self, stmt: Stmt) -> Result<(), SchemaError> {
        let table_err = |line| move |source| SchemaError::Table { line, source };
        match stmt {
            Stmt::Skipped => {}
            Stmt::Keyspace(ks) => {
                self.schema.add_keyspace(ks.clone());
                self.current_ks.get_or_insert(ks);
            }
            Stmt::Use(ks) => self.current_ks = Some(ks),
            Stmt::Type { ks, name, fields } => {
                let ks = self.keyspace(ks, &name)?;
                let fields = fields
                    .iter()
                    .map(|(f, t)| Ok((f.clone(), self.resolve(t, &ks, false)?)))
                    .collect::<Result<_, _>>()?;
                self.schema.add_type(UserType { keyspace: ks, name, fields });
            }
            Stmt::AlterTypeAdd { ks, name, field, ty } => {
                let ks = self.keyspace(ks, &name)?;
                let ty = self.resolve(&ty, &ks, false)?;
                let mut def = (**self
                    .schema
                    .user_type(&ks, &name)
                    .ok_or_else(|| SchemaError::UnknownType { line: self.line, name: name.clone() })?)
                .clone();
                def.fields.push((field, ty));
                self.schema.add_type(def);
            }
            Stmt::Table(def) => {
                let ks = self.keyspace(def.ks, &def.name)?;
                let mut b = Table::builder(ks.clone(), def.name.clone()).id(def.id.unwrap_or_else(Uuid::nil));
                let mut partition_key = def.partition_key;
                if let Some(pk) = def.inline_pk {
                    partition_key = vec![pk];
                }
                // A key column's declaration and resolved type.
                let key_column = |name: &String| {
                    let (n, t, _) = def.columns.iter().find(|c| &c.0 == name).ok_or_else(|| {
                        table_err(self.line)(TableError::UnknownKeyColumn {
                            table: def.name.clone(),
                            column: name.clone(),
                        })
                    })?;
                    Ok::<_, SchemaError>((n.clone(), self.resolve(t, &ks, true)?))
                };
                for name in &partition_key {
                    let (n, t) = key_column(name)?;
                    b = b.partition_key(n, t);
                }
                for name in &def.clustering {
                    let (n, t) = key_column(name)?;
                    let order = def.orders.iter().find(|(c, _)| c == name).map_or(Order::Asc, |(_, o)| *o);
                    b = b.clustering(n, t, order);
                }
                for (n, t, is_static) in &def.columns {
                    if partition_key.contains(n) || def.clustering.contains(n) {
                        continue;
                    }
                    let t = self.resolve(t, &ks, true)?;
                    b = if *is_static { b.static_column(n.clone(), t) } else { b.regular(n.clone(), t) };
                }
                let table = b.build().map_err(table_err(self.line))?;
                self.schema.add_table(table);
            }
            Stmt::Drop { ks, table, columns, at } => {
                let ks = self.keyspace(ks, &table)?;
                let at = at.unwrap_or(i64::MAX);
                self.schema
                    .amend_table(&ks, &table, |t| columns.iter().try_for_each(|c| t.drop_column(c, at)))
                    .map_err(table_err(self.line))?;
            }
            Stmt::Add { ks, table, columns } => {
                let ks = self.keyspace(ks, &table)?;
                let resolved = columns
                    .iter()
                    .map(|(n, t, s)| Ok((n.clone(), self.resolve(t, &ks, true)?, *s)))
                    .collect::<Result<Vec<_>, SchemaError>>()?;
                self.schema
                    .amend_table(&ks, &table, |t| {
                        resolved.into_iter().try_for_each(|(n, ty, s)| t.add_column(n, ty, s))
                    })
                    .map_err(table_err(self.line))?;
            }
        }
        Ok(())
    }
}

impl Schema {
    /// Loads CQL DDL text (for example `DESCRIBE KEYSPACE ... WITH INTERNALS`).
    pub fn parse(cql: &str) -> Result<Schema, SchemaError> {
        let mut schema = Schema::new();
        schema.load_cql(cql)?;
        Ok(schema)
    }

    /// Loads more CQL DDL text into this schema.
    pub fn load_cql(&mut self, cql: &str) -> Result<(), SchemaError> {
        let mut loader = Loader { schema: self, current_ks: None, line: 1 };
        let mut rest = cql;
        // Newlines are counted once, from one statement to the next.
        let mut counted = 0;
        loop {
            let trimmed = match ws(rest) {
                Ok((r, _)) => r,
                Err(e) => return Err(syntax(cql, e)),
            };
            if trimmed.is_empty() {
                return Ok(());
            }
            let at = cql.len() - trimmed.len();
            loader.line += cql[counted..at].matches('\n').count();
            counted = at;
            let (r, stmt) = statement(trimmed).map_err(|e| syntax(cql, e))?;
            let (r, _) = ws(r).map_err(|e| syntax(cql, e))?;
            let r = match r.strip_prefix(';') {
                Some(r) => r,
                None if r.is_empty() || matches!(stmt, Stmt::Skipped | Stmt::Keyspace(_)) => r,
                None => return Err(syntax(cql, nom::Err::Error(PErr { at: r, expected: "';'" }))),
            };
            loader.apply(stmt)?;
            rest = r;
        }
    }
}

fn syntax(text: &str, e: nom::Err<PErr<'_>>) -> SchemaError {
    let err = match e {
        nom::Err::Error(e) | nom::Err::Failure(e) => e,
        nom::Err::Incomplete(_) => PErr { at: "", expected: "more input" },
    };
    let (line, column) = line_col(text, err.at);
    SchemaError::Syntax { line, column, expected: err.expected, found: err.at.chars().take(32).collect() }
}

/// Quotes an identifier as CQL needs it (lower-case names of letters,
/// digits and `_` stay bare).
pub fn quote_identifier(name: &str) -> String {
    let bare = name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if bare { name.to_owned() } else { format!("\"{}\"", name.replace('"', "\"\"")) }
}
