//! Canonical cache keys and partition-key values. Pure functions, no I/O.
//!
//! A key holds everything in a read request that can change its answer, in one canonical form:
//! object keys sorted at every depth, DynamoDB numbers normalised (`"1.0"` and `"1"` are one
//! number), set members sorted, and `#name` / `:value` placeholders replaced by what they stand
//! for, so that neither JSON attribute order nor placeholder naming splits entries.

use crate::protocol::json::{Json, Object};
use std::fmt::Write;

/// Request members that never change a read's answer and so stay out of its key.
/// `ExpressionAttributeNames`/`Values` are folded into the expressions instead.
const NOT_IN_KEY: &[&str] = &[
    "TableName",
    "ReturnConsumedCapacity",
    "ConsistentRead",
    "ExpressionAttributeNames",
    "ExpressionAttributeValues",
];

/// The cache key of a read: operation, table and the canonical form of every other member.
/// Members the proxy does not know are kept, so a future request member can only split entries,
/// never merge two different requests.
pub fn read_key(operation: &str, table: &str, request: &Object<'_>) -> Vec<u8> {
    let names = request
        .get("ExpressionAttributeNames")
        .and_then(Json::as_object);
    let values = request
        .get("ExpressionAttributeValues")
        .and_then(Json::as_object);
    let mut members: Vec<(&str, &Json)> = request
        .iter()
        .filter(|(k, _)| !NOT_IN_KEY.contains(k))
        .collect();
    members.sort_by(|a, b| a.0.cmp(b.0));

    let mut out = String::with_capacity(128);
    out.push_str(operation);
    out.push('\n');
    write_json_string(&mut out, table);
    out.push('\n');
    out.push('{');
    for (i, (name, value)) in members.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_json_string(&mut out, name);
        out.push(':');
        match value {
            Json::String(expr) if name.ends_with("Expression") => {
                write_json_string(&mut out, &resolve_expression(expr, names, values));
            }
            other => write_canonical(&mut out, other),
        }
    }
    out.push('}');
    out.into_bytes()
}

/// A table name as DynamoDB resolves it: a table ARN (`arn:...:table/Name`) names `Name`.
pub fn table_name(raw: &str) -> &str {
    match raw.split_once(":table/") {
        Some((_, name)) if raw.starts_with("arn:") => name.split('/').next().unwrap_or(name),
        _ => raw,
    }
}

/// The canonical text of an attribute value, used for partition tags: two values DynamoDB
/// considers the same key give the same text.
pub fn canonical_value(value: &Json) -> String {
    let mut out = String::new();
    write_canonical(&mut out, value);
    out
}

/// Writes `value` as JSON with object keys sorted, numbers of `{"N": ..}` and `{"NS": [..]}`
/// normalised, and the members of `SS`/`NS`/`BS` sets sorted.
pub fn write_canonical(out: &mut String, value: &Json) {
    match value {
        Json::Object(map) => {
            if map.len() == 1 {
                let (tag, inner) = map.iter().next().expect("one member");
                match (tag, inner) {
                    ("N", Json::String(n)) => {
                        out.push_str("{\"N\":");
                        write_json_string(out, &normalize_number(n));
                        out.push('}');
                        return;
                    }
                    ("SS" | "NS" | "BS", Json::Array(items))
                        if items.iter().all(Json::is_string) =>
                    {
                        let mut members: Vec<String> = items
                            .iter()
                            .filter_map(Json::as_str)
                            .map(|s| {
                                if tag == "NS" {
                                    normalize_number(s)
                                } else {
                                    s.to_string()
                                }
                            })
                            .collect();
                        members.sort();
                        out.push('{');
                        write_json_string(out, tag);
                        out.push_str(":[");
                        for (i, m) in members.iter().enumerate() {
                            if i > 0 {
                                out.push(',');
                            }
                            write_json_string(out, m);
                        }
                        out.push_str("]}");
                        return;
                    }
                    (tag, inner) => {
                        // One member needs no sorting (and no vector).
                        out.push('{');
                        write_json_string(out, tag);
                        out.push(':');
                        write_canonical(out, inner);
                        out.push('}');
                        return;
                    }
                }
            }
            let mut entries: Vec<(&str, &Json)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json_string(out, k);
                out.push(':');
                write_canonical(out, v);
            }
            out.push('}');
        }
        Json::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(out, v);
            }
            out.push(']');
        }
        Json::String(s) => write_json_string(out, s),
        Json::Number(n) => {
            let _ = write!(out, "{n}");
        }
        Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Json::Null => out.push_str("null"),
    }
}

/// Writes `s` as a JSON string, escaped exactly as serde_json does (one canonical escape per
/// character), without an intermediate allocation.
fn write_json_string(out: &mut String, s: &str) {
    out.reserve(s.len() + 2);
    out.push('"');
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let escape: &str = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0x00..=0x1f => "",
            _ => continue,
        };
        out.push_str(&s[start..i]);
        if escape.is_empty() {
            let _ = write!(out, "\\u{b:04x}");
        } else {
            out.push_str(escape);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// Normalises a DynamoDB number so equal numbers have equal text: `"1"`, `"1.0"`, `"+1"`,
/// `"0.1E1"` and `"10e-1"` all become `"1E0"`; zero is `"0"`. Text that is not a number is
/// returned unchanged (DynamoDB will refuse it, and errors are never cached).
pub fn normalize_number(raw: &str) -> String {
    parse_number(raw.trim()).unwrap_or_else(|| raw.to_string())
}

fn parse_number(s: &str) -> Option<String> {
    let (negative, rest) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let (mantissa, exponent) = match rest.find(['e', 'E']) {
        Some(i) => (&rest[..i], rest[i + 1..].parse::<i64>().ok()?),
        None => (rest, 0),
    };
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int_part.is_empty() && frac_part.is_empty() {
        return None;
    }
    if !int_part
        .bytes()
        .chain(frac_part.bytes())
        .all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let digits: String = int_part.chars().chain(frac_part.chars()).collect();
    let leading = digits.bytes().take_while(|&b| b == b'0').count();
    let significant = digits[leading..].trim_end_matches('0');
    if significant.is_empty() {
        return Some("0".to_string());
    }
    // value = 0.<digits> * 10^(int_len + exponent); with leading zeros removed the point moves.
    // Scientific form d.ddd E (point - 1). An exponent this overflows is far outside DynamoDB's
    // range: such text stays as written (it used to wrap, giving 10E(2^63-1) and 1E(-2^63) one
    // spelling, and to panic in a build with overflow checks).
    let scientific_exponent = (int_part.len() as i64 - leading as i64 - 1).checked_add(exponent)?;
    let (first, tail) = significant.split_at(1);
    let mut out = String::with_capacity(significant.len() + 8);
    if negative {
        out.push('-');
    }
    out.push_str(first);
    if !tail.is_empty() {
        out.push('.');
        out.push_str(tail);
    }
    let _ = write!(out, "E{scientific_exponent}");
    Some(out)
}

/// Replaces `#name` and `:value` placeholders by what they stand for. Names become `#"name"` and
/// values `:<canonical JSON>`: forms that cannot appear in a DynamoDB expression, so a resolved
/// expression cannot collide with a different literal one. Unknown placeholders stay as written
/// (DynamoDB refuses such a request, and errors are never cached).
pub fn resolve_expression(expr: &str, names: Option<&Object>, values: Option<&Object>) -> String {
    let mut out = String::with_capacity(expr.len() + 16);
    let bytes = expr.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c == b'#' || c == b':' {
            let end = placeholder_end(bytes, i + 1);
            if end > i + 1 {
                let token = &expr[i..end];
                let resolved = if c == b'#' {
                    names
                        .and_then(|m| m.get(token))
                        .and_then(Json::as_str)
                        .map(|name| {
                            let mut s = String::from("#");
                            write_json_string(&mut s, name);
                            s
                        })
                } else {
                    values.and_then(|m| m.get(token)).map(|v| {
                        let mut s = String::from(":");
                        write_canonical(&mut s, v);
                        s
                    })
                };
                out.push_str(resolved.as_deref().unwrap_or(token));
                i = end;
                continue;
            }
        }
        // Push the whole UTF-8 character starting here.
        let ch_len = expr[i..].chars().next().map_or(1, char::len_utf8);
        out.push_str(&expr[i..i + ch_len]);
        i += ch_len;
    }
    out
}

fn placeholder_end(bytes: &[u8], mut i: usize) -> usize {
    while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
        i += 1;
    }
    i
}

/// The value a key condition binds the attribute `pk_name` to with `=`, from either
/// `KeyConditionExpression` (with its placeholders) or the legacy `KeyConditions`.
pub fn partition_value<'a, 'b>(request: &'a Object<'b>, pk_name: &str) -> Option<&'a Json<'b>> {
    if let Some(expr) = request.get("KeyConditionExpression").and_then(Json::as_str) {
        let names = request
            .get("ExpressionAttributeNames")
            .and_then(Json::as_object);
        let values = request
            .get("ExpressionAttributeValues")
            .and_then(Json::as_object)?;
        return key_condition_value(expr, names, values, pk_name);
    }
    let cond = request.get("KeyConditions")?.get(pk_name)?;
    if cond.get("ComparisonOperator")?.as_str()? != "EQ" {
        return None;
    }
    match cond.get("AttributeValueList")?.as_array()? {
        [one] => Some(one),
        _ => None,
    }
}

#[derive(Debug, PartialEq)]
enum Token<'a> {
    Name(&'a str),
    Value(&'a str),
    Eq,
    Other,
}

fn key_condition_value<'a, 'b>(
    expr: &str,
    names: Option<&Object>,
    values: &'a Object<'b>,
    pk_name: &str,
) -> Option<&'a Json<'b>> {
    let tokens = tokenize(expr);
    let is_pk = |t: &Token| match t {
        Token::Name(n) if n.starts_with('#') => {
            names.and_then(|m| m.get(n)).and_then(Json::as_str) == Some(pk_name)
        }
        Token::Name(n) => *n == pk_name,
        _ => false,
    };
    for w in tokens.windows(3) {
        if w[1] != Token::Eq {
            continue;
        }
        let value_token = match (&w[0], &w[2]) {
            (a, Token::Value(v)) if is_pk(a) => v,
            (Token::Value(v), b) if is_pk(b) => v,
            _ => continue,
        };
        return values.get(value_token);
    }
    None
}

fn tokenize(expr: &str) -> Vec<Token<'_>> {
    let bytes = expr.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if c == b'#' || c == b':' {
            let end = placeholder_end(bytes, i + 1);
            let end = end.max(i + 1);
            tokens.push(if c == b'#' {
                Token::Name(&expr[i..end])
            } else {
                Token::Value(&expr[i..end])
            });
            i = end;
        } else if c.is_ascii_alphabetic() || c == b'_' {
            let end = placeholder_end(bytes, i);
            // A dotted or indexed path is never a key attribute.
            let path = end < bytes.len() && matches!(bytes[end], b'.' | b'[');
            tokens.push(if path {
                Token::Other
            } else {
                Token::Name(&expr[i..end])
            });
            i = end;
        } else if c == b'=' {
            tokens.push(Token::Eq);
            i += 1;
        } else if matches!(c, b'<' | b'>' | b'!') {
            // `<=`, `>=`, `<>` are not equality.
            i += if bytes.get(i + 1) == Some(&b'=') || bytes.get(i + 1) == Some(&b'>') {
                2
            } else {
                1
            };
            tokens.push(Token::Other);
        } else {
            let ch_len = expr[i..].chars().next().map_or(1, char::len_utf8);
            tokens.push(Token::Other);
            i += ch_len;
        }
    }
    tokens
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::json::leaked;
    use serde_json::{Value, json};

    fn obj(v: Value) -> Object<'static> {
        leaked(v).as_object().unwrap().clone()
    }

    fn key(v: Value) -> Vec<u8> {
        read_key("Query", "T", &obj(v))
    }

    #[test]
    fn numbers_normalise() {
        let same = ["1", "1.0", "+1", "01", "0.1E1", "10e-1", "1.000e0", " 1 "];
        for s in same {
            assert_eq!(normalize_number(s), "1E0", "{s}");
        }
        assert_eq!(normalize_number("0"), "0");
        assert_eq!(normalize_number("-0.000"), "0");
        assert_eq!(normalize_number("-12.50"), "-1.25E1");
        assert_eq!(normalize_number("0.0012"), "1.2E-3");
        assert_eq!(normalize_number("1200"), "1.2E3");
        assert_ne!(normalize_number("12"), normalize_number("1.2"));
        assert_ne!(normalize_number("-1"), normalize_number("1"));
        // Exponents that overflow i64 arithmetic stay as written, and apart.
        let (huge, tiny) = ("10e9223372036854775807", "1e-9223372036854775808");
        assert_eq!(normalize_number(huge), huge);
        assert_eq!(normalize_number(tiny), "1E-9223372036854775808");
        assert_eq!(
            normalize_number("1e9223372036854775807"),
            "1E9223372036854775807"
        );
        for bad in ["", "abc", "1e", "1.2.3", "--1", "."] {
            assert_eq!(normalize_number(bad), bad);
        }
    }

    #[test]
    fn member_order_does_not_change_the_key() {
        let a = key(
            json!({"TableName":"T","Limit":5,"KeyConditionExpression":"pk = :v",
            "ExpressionAttributeValues":{":v":{"S":"x"}}}),
        );
        let b = key(
            json!({"ExpressionAttributeValues":{":v":{"S":"x"}},"Limit":5,
            "KeyConditionExpression":"pk = :v","TableName":"T"}),
        );
        assert_eq!(a, b);
    }

    #[test]
    fn placeholder_names_do_not_split_entries() {
        let a = key(
            json!({"KeyConditionExpression":"#a = :x","ProjectionExpression":"#a, #b",
            "ExpressionAttributeNames":{"#a":"pk","#b":"name"},
            "ExpressionAttributeValues":{":x":{"S":"u1"}}}),
        );
        let b = key(
            json!({"KeyConditionExpression":"#p = :val","ProjectionExpression":"#p, #q",
            "ExpressionAttributeNames":{"#p":"pk","#q":"name"},
            "ExpressionAttributeValues":{":val":{"S":"u1"}}}),
        );
        assert_eq!(a, b);
    }

    #[test]
    fn answer_changing_members_split_entries() {
        let base = json!({"KeyConditionExpression":"pk = :x",
            "ExpressionAttributeValues":{":x":{"S":"u1"}}});
        let base_key = key(base.clone());
        let variants = [
            ("Limit", json!(10)),
            ("ScanIndexForward", json!(false)),
            ("ExclusiveStartKey", json!({"pk":{"S":"u1"},"sk":{"S":"a"}})),
            ("ProjectionExpression", json!("pk")),
            ("Select", json!("COUNT")),
            ("IndexName", json!("gsi1")),
            ("FilterExpression", json!("attribute_exists(pk)")),
            ("SomeFutureMember", json!(1)),
        ];
        let mut seen = std::collections::HashSet::new();
        for (name, value) in variants {
            let mut req = base.clone();
            req[name] = value;
            let k = key(req);
            assert_ne!(k, base_key, "{name} must change the key");
            assert!(seen.insert(k), "{name} collided with another variant");
        }
        let mut other_value = base.clone();
        other_value["ExpressionAttributeValues"][":x"] = json!({"S":"u2"});
        assert_ne!(key(other_value), base_key);
        assert_ne!(read_key("Query", "Other", &obj(base.clone())), base_key);
        assert_ne!(read_key("Scan", "T", &obj(base)), base_key);
    }

    #[test]
    fn members_that_do_not_change_the_answer_share_a_key() {
        let a = key(json!({"TableName":"T","Key":{"pk":{"S":"a"}}}));
        let b = key(
            json!({"TableName":"T","Key":{"pk":{"S":"a"}},"ConsistentRead":false,
            "ReturnConsumedCapacity":"TOTAL"}),
        );
        assert_eq!(a, b);
    }

    #[test]
    fn equal_numbers_and_sets_share_a_key() {
        let a = key(json!({"Key":{"pk":{"N":"1.0"},"tags":{"SS":["b","a"]}}}));
        let b = key(json!({"Key":{"tags":{"SS":["a","b"]},"pk":{"N":"1"}}}));
        assert_eq!(a, b);
    }

    #[test]
    fn bare_json_numbers_have_one_canonical_spelling() {
        // Found by fuzz/canonical_key (fuzz/regressions/canonical_key/): serde_json's default
        // float parser is best-effort (1 ULP off on long mantissas), so the canonical text of a
        // parsed float did not read back as itself, and two spellings of one f64 got two keys.
        // The `float_roundtrip` feature makes parsing exact.
        let long = "3".repeat(73);
        let text = canonical_value(&Json::parse(long.as_bytes()).unwrap());
        assert_eq!(text, "3.3333333333333333e+72");
        assert_eq!(
            canonical_value(&Json::parse(text.as_bytes()).unwrap()),
            text
        );
        let raw_key = |body: &str| {
            let v = Json::parse(body.as_bytes()).unwrap();
            read_key("Query", "T", v.as_object().unwrap())
        };
        assert_eq!(
            raw_key(&format!("{{\"Limit\":{long}}}")),
            raw_key("{\"Limit\":3.3333333333333333e+72}")
        );
        assert_ne!(
            raw_key("{\"Limit\":3.3333333333333333e+72}"),
            raw_key("{\"Limit\":3.3333333333333337e+72}")
        );
    }

    #[test]
    fn a_resolved_name_cannot_collide_with_a_literal() {
        // `#n` standing for `a` must not equal a literal attribute named like the resolution.
        let resolved = key(json!({"ProjectionExpression":"#n",
            "ExpressionAttributeNames":{"#n":"a"}}));
        let literal = key(json!({"ProjectionExpression":"a"}));
        assert_ne!(resolved, literal);
    }

    #[test]
    fn strings_are_escaped_like_serde_json() {
        for text in [
            "plain",
            "quote\" back\\ slash",
            "nl\n cr\r tab\t",
            "\u{0}\u{1f}\u{8}\u{c}",
            "é ü 😀",
            "",
        ] {
            let mut out = String::new();
            write_json_string(&mut out, text);
            assert_eq!(out, serde_json::to_string(text).unwrap(), "{text:?}");
        }
    }

    #[test]
    fn table_arns_resolve_to_names() {
        assert_eq!(
            table_name("arn:aws:dynamodb:us-east-1:123456789012:table/Orders"),
            "Orders"
        );
        assert_eq!(table_name("Orders"), "Orders");
    }

    #[test]
    fn partition_value_from_key_conditions() {
        let cases = [
            json!({"KeyConditionExpression":"pk = :v","ExpressionAttributeValues":{":v":{"S":"x"}}}),
            json!({"KeyConditionExpression":"#p=:v AND sk BETWEEN :a AND :b",
                "ExpressionAttributeNames":{"#p":"pk"},
                "ExpressionAttributeValues":{":v":{"S":"x"},":a":{"S":"1"},":b":{"S":"2"}}}),
            json!({"KeyConditionExpression":"begins_with(sk, :s) and :v = pk",
                "ExpressionAttributeValues":{":v":{"S":"x"},":s":{"S":"m"}}}),
            json!({"KeyConditionExpression":"(pk = :v) AND (sk >= :s)",
                "ExpressionAttributeValues":{":v":{"S":"x"},":s":{"S":"m"}}}),
            json!({"KeyConditions":{"pk":{"ComparisonOperator":"EQ","AttributeValueList":[{"S":"x"}]}}}),
        ];
        for c in cases {
            assert_eq!(
                partition_value(&obj(c.clone()), "pk"),
                Some(&leaked(json!({"S":"x"}))),
                "{c}"
            );
        }
        let none = [
            json!({"KeyConditionExpression":"sk = :v","ExpressionAttributeValues":{":v":{"S":"x"}}}),
            json!({"KeyConditionExpression":"pk >= :v","ExpressionAttributeValues":{":v":{"S":"x"}}}),
            json!({"KeyConditionExpression":"pk.sub = :v","ExpressionAttributeValues":{":v":{"S":"x"}}}),
            json!({"KeyConditionExpression":"pk = :missing","ExpressionAttributeValues":{":v":{"S":"x"}}}),
            json!({"KeyConditions":{"pk":{"ComparisonOperator":"BEGINS_WITH","AttributeValueList":[{"S":"x"}]}}}),
            json!({}),
        ];
        for c in none {
            assert_eq!(partition_value(&obj(c.clone()), "pk"), None, "{c}");
        }
    }
}
