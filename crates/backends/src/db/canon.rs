//! The canonical form of values for the cross-engine compare (MySQL/MariaDB source ->
//! PostgreSQL target, or back): each side prints a column as text in SQL, and the client
//! normalises that text per column pair so equal data compares equal: decimals without
//! trailing zeros, timestamps in UTC with the fraction's trailing zeros dropped, booleans as
//! 0/1, floats at the narrower side's precision, JSON with sorted keys, NULL as a tag of
//! its own (never confused with '').

use std::hash::{DefaultHasher, Hasher};

use super::catalog::{Column, TypeClass};
use super::sql::quote;

/// How a column pair is compared across engines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Canon {
    Int,
    Bool,
    Decimal,
    Float {
        single: bool,
    },
    Date,
    Time,
    Timestamp,
    Text,
    /// Bytes, compared as upper-case hex.
    Binary,
    Json,
    Uuid,
}

/// The comparison for a source column and the target column of the same name.
pub(crate) fn pair(a: TypeClass, b: TypeClass) -> Canon {
    use TypeClass as T;
    let either = |f: &dyn Fn(TypeClass) -> bool| f(a) || f(b);
    let both = |f: &dyn Fn(TypeClass) -> bool| f(a) && f(b);
    let is_bool = |t: TypeClass| {
        matches!(
            t,
            T::Bool
                | T::Int {
                    bool_like: true,
                    ..
                }
        )
    };
    let is_float = |t: TypeClass| matches!(t, T::Float32 | T::Float64);
    let is_number = |t: TypeClass| matches!(t, T::Int { .. } | T::Decimal | T::Bit);
    if either(&|t| t == T::Json) {
        Canon::Json
    } else if either(&|t| t == T::Uuid) {
        Canon::Uuid
    } else if either(&|t| t == T::Binary) && !either(&|t| t == T::Bit) {
        Canon::Binary
    } else if either(&|t| t == T::Bool) && both(&|t| is_bool(t) || t == T::Bit || is_number(t)) {
        Canon::Bool
    } else if either(&is_float) && both(&|t| is_float(t) || is_number(t)) {
        Canon::Float {
            single: either(&|t| t == T::Float32),
        }
    } else if either(&|t| t == T::Decimal) && both(&is_number) {
        Canon::Decimal
    } else if both(&is_number) {
        Canon::Int
    } else if either(&|t| matches!(t, T::Timestamp { .. })) {
        Canon::Timestamp
    } else if both(&|t| t == T::Date) {
        Canon::Date
    } else if both(&|t| t == T::Time) {
        Canon::Time
    } else {
        Canon::Text
    }
}

/// The SQL expression that prints `col` for the canonical compare.
pub(crate) fn select_expr(mysql: bool, col: &Column, canon: Canon) -> String {
    let q = quote(mysql, &col.name);
    if mysql {
        match (col.class, canon) {
            (TypeClass::Binary, _) => format!("HEX({q})"),
            (_, Canon::Binary) => format!("HEX(CONVERT({q} USING utf8mb4))"),
            (TypeClass::Bit, _) => format!("CAST({q} + 0 AS CHAR)"),
            _ => format!("CAST({q} AS CHAR)"),
        }
    } else {
        match (col.class, canon) {
            (TypeClass::Binary, _) => format!("upper(encode({q}, 'hex'))"),
            (_, Canon::Binary) => format!("upper(encode(convert_to({q}::text, 'UTF8'), 'hex'))"),
            (TypeClass::Timestamp { tz: true }, _) => format!("({q} AT TIME ZONE 'UTC')::text"),
            (TypeClass::Bool, _) => format!("{q}::int::text"),
            _ => format!("{q}::text"),
        }
    }
}

/// Significant digits a float is printed with in SQL: enough to tell any two values of
/// the width apart (9 for single, 17 for double), computed by the same IEEE operations on
/// both engines, so equal values print alike.
const SINGLE_DIGITS: i32 = 9;
const DOUBLE_DIGITS: i32 = 17;

/// The SQL text of `col` in canonical form, computed in the server (the pushed-down
/// cross-engine hash), or why this column pair has none. `other` is the class of the
/// column on the other side. The text equals on both engines exactly when the canonical
/// values of [`value`] do, except that floats are compared by their value at the narrower
/// width rather than by the client's shortest print.
pub(crate) fn sql_text(
    mysql: bool,
    col: &Column,
    canon: Canon,
    other: TypeClass,
) -> Result<String, String> {
    use TypeClass as T;
    let q = quote(mysql, &col.name);
    let no = |why: &str| Err(format!("column {} ({}): {why}", col.name, col.sql_type));
    let plain = if mysql {
        match col.class {
            T::Bit => format!("CAST({q} + 0 AS CHAR)"),
            _ => format!("CAST({q} AS CHAR)"),
        }
    } else {
        format!("{q}::text")
    };
    // Trailing zeros of a fraction dropped ("1.500" -> "1.5", "05.000" -> "05").
    let trim = |t: &str| {
        if mysql {
            format!(
                "IF(LOCATE('.', {t}) > 0, TRIM(TRAILING '.' FROM TRIM(TRAILING '0' FROM {t})), {t})"
            )
        } else {
            format!("CASE WHEN strpos({t}, '.') > 0 THEN rtrim(rtrim({t}, '0'), '.') ELSE {t} END")
        }
    };
    if col.class == T::Other || col.sql_type.starts_with("money") {
        return no("no canonical SQL form for this type");
    }
    Ok(match canon {
        Canon::Int => {
            if !matches!(col.class, T::Int { .. } | T::Bit) {
                return no("not an integer");
            }
            plain
        }
        Canon::Bool => match col.class {
            T::Bool if !mysql => format!("{q}::int::text"),
            T::Int { .. } | T::Bit => {
                if mysql {
                    format!("CAST({q} + 0 AS CHAR)")
                } else {
                    plain
                }
            }
            _ => return no("not a boolean or an integer"),
        },
        Canon::Decimal => match col.class {
            T::Int { .. } | T::Bit => plain,
            T::Decimal if mysql => format!("IF({q} = 0, '0', {})", trim(&plain)),
            T::Decimal => format!("CASE WHEN {q} = 0 THEN '0' ELSE trim_scale({q})::text END"),
            _ => return no("not a number"),
        },
        Canon::Float { single } => {
            if !matches!(
                col.class,
                T::Float32 | T::Float64 | T::Int { .. } | T::Decimal
            ) || !matches!(other, T::Float32 | T::Float64 | T::Int { .. } | T::Decimal)
            {
                return no("not a number");
            }
            let digits = if single { SINGLE_DIGITS } else { DOUBLE_DIGITS };
            // The value at the narrower width, as a double: mantissa of `digits` digits
            // and exponent, "0" for both zeros.
            let v = match (mysql, single) {
                (true, true) => format!("CAST(CAST({q} AS FLOAT) AS DOUBLE)"),
                (true, false) => format!("CAST({q} AS DOUBLE)"),
                (false, true) => format!("{q}::real::float8"),
                (false, false) => format!("{q}::float8"),
            };
            if mysql {
                format!(
                    "IF({v} = 0, '0', CONCAT(CAST(ROUND({v} / POW(10, FLOOR(LOG10(ABS({v}))) - {})) AS SIGNED), 'e', CAST(FLOOR(LOG10(ABS({v}))) AS SIGNED)))",
                    digits - 1
                )
            } else {
                format!(
                    "CASE WHEN {v} = 0 THEN '0' ELSE round({v} / 10 ^ (floor(log(abs({v}))) - {}))::bigint::text || 'e' || floor(log(abs({v})))::bigint::text END",
                    digits - 1
                )
            }
        }
        Canon::Date => {
            if col.class != T::Date {
                return no("not a date");
            }
            plain
        }
        Canon::Time => {
            if col.class != T::Time {
                return no("not a time");
            }
            trim(&plain)
        }
        Canon::Timestamp => {
            let t = match (mysql, col.class) {
                (true, T::Timestamp { .. }) => plain,
                (true, T::Date) => format!("CAST(CAST({q} AS DATETIME) AS CHAR)"),
                (false, T::Timestamp { tz: true }) => format!("({q} AT TIME ZONE 'UTC')::text"),
                (false, T::Timestamp { tz: false }) => plain,
                (false, T::Date) => format!("{q}::timestamp::text"),
                _ => return no("not a date or a timestamp"),
            };
            trim(&t)
        }
        Canon::Text => {
            if !matches!(
                col.class,
                T::Text | T::Int { .. } | T::Decimal | T::Date | T::Time
            ) {
                return no("no common text form with the other side");
            }
            plain
        }
        Canon::Binary => match (mysql, col.class) {
            (true, T::Binary) => format!("HEX({q})"),
            (true, T::Text) => format!("HEX(CONVERT({q} USING utf8mb4))"),
            (false, T::Binary) => format!("upper(encode({q}, 'hex'))"),
            (false, T::Text) => format!("upper(encode(convert_to({q}::text, 'UTF8'), 'hex'))"),
            _ => return no("not bytes or text"),
        },
        Canon::Uuid => {
            if !matches!(col.class, T::Uuid | T::Text) {
                return no("not a uuid or text");
            }
            if mysql {
                format!("LOWER(TRIM({plain}))")
            } else {
                format!("lower(trim({plain}))")
            }
        }
        Canon::Json => {
            return no(
                "JSON has no common canonical SQL form (MariaDB keeps the text, jsonb reorders keys and prints numbers its own way)",
            );
        }
    })
}

/// Whether a canonical text may hold the field separator (then it is length-prefixed).
fn free_text(canon: Canon) -> bool {
    matches!(canon, Canon::Text)
}

/// The pushed-down row hash of the cross-engine compare: a 60-bit prefix of the MD5 of
/// the row's canonical text, as an integer both engines compute alike (MySQL
/// `CONV(LEFT(MD5(t), 15), 16, 10)`, PostgreSQL `('x' || left(md5(t), 15))::bit(60)`).
/// In the text each field is `N` for NULL, else `v` and the value (`length:value` for free
/// text), joined by `|`, so NULL, '' and a moved separator all hash differently.
pub(crate) fn sql_row_hash(
    mysql: bool,
    cols: &[(&Column, Canon, TypeClass)],
) -> Result<String, String> {
    let mut fields = Vec::with_capacity(cols.len());
    for (col, canon, other) in cols {
        let t = sql_text(mysql, col, *canon, *other)?;
        fields.push(match (mysql, free_text(*canon)) {
            (true, true) => format!("COALESCE(CONCAT(CHAR_LENGTH({t}), ':', {t}), 'N')"),
            (true, false) => format!("COALESCE(CONCAT('v', {t}), 'N')"),
            (false, true) => format!("coalesce(length({t})::text || ':' || {t}, 'N')"),
            (false, false) => format!("coalesce('v' || {t}, 'N')"),
        });
    }
    if fields.is_empty() {
        fields.push("''".into());
    }
    Ok(if mysql {
        format!(
            "CAST(CONV(LEFT(MD5(CONVERT(CONCAT_WS('|', {}) USING utf8mb4)), 15), 16, 10) AS UNSIGNED)",
            fields.join(", ")
        )
    } else {
        format!(
            "('x' || left(md5(concat_ws('|', {})), 15))::bit(60)::bigint",
            fields.join(", ")
        )
    })
}

/// Normalises one printed value.
pub(crate) fn value(canon: Canon, text: &str) -> String {
    match canon {
        Canon::Int => {
            let t = text.trim();
            t.parse::<i128>()
                .map(|v| v.to_string())
                .unwrap_or_else(|_| t.to_string())
        }
        Canon::Bool => match text.trim().to_ascii_lowercase().as_str() {
            "1" | "t" | "true" => "1".into(),
            "0" | "f" | "false" => "0".into(),
            other => other.to_string(),
        },
        Canon::Decimal => decimal(text.trim()),
        Canon::Float { single } => match text.trim().parse::<f64>() {
            Ok(0.0) => "0".into(),
            Ok(v) if single => (v as f32).to_string(),
            Ok(v) => v.to_string(),
            Err(_) => text.trim().to_string(),
        },
        Canon::Date | Canon::Text => text.to_string(),
        Canon::Time => trim_fraction(text.trim()).to_string(),
        Canon::Timestamp => timestamp(text.trim()),
        Canon::Binary => text.to_ascii_uppercase(),
        Canon::Uuid => text.trim().to_ascii_lowercase(),
        Canon::Json => match serde_json::from_str::<serde_json::Value>(text) {
            Ok(v) => {
                let mut out = String::with_capacity(text.len());
                json(&v, &mut out);
                out
            }
            Err(_) => text.to_string(),
        },
    }
}

/// `+001.500` -> `1.5`, `-0.00` -> `0`, `42.000` -> `42`.
fn decimal(t: &str) -> String {
    let t = t.strip_prefix('+').unwrap_or(t);
    let (neg, digits) = match t.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, t),
    };
    if !digits.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return t.to_string();
    }
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let int = int.trim_start_matches('0');
    let frac = frac.trim_end_matches('0');
    let int = if int.is_empty() { "0" } else { int };
    if int == "0" && frac.is_empty() {
        return "0".into();
    }
    let sign = if neg { "-" } else { "" };
    if frac.is_empty() {
        format!("{sign}{int}")
    } else {
        format!("{sign}{int}.{frac}")
    }
}

fn trim_fraction(t: &str) -> &str {
    match t.split_once('.') {
        Some((_, frac)) if frac.chars().all(|c| c.is_ascii_digit()) => {
            let trimmed = t.trim_end_matches('0');
            trimmed.strip_suffix('.').unwrap_or(trimmed)
        }
        _ => t,
    }
}

/// `2024-01-02T03:04:05.120000+00:00` -> `2024-01-02 03:04:05.12`; a bare date gets
/// midnight. Values are already in UTC (both sides' sessions run in UTC).
fn timestamp(t: &str) -> String {
    let mut s = t.replacen('T', " ", 1);
    for suffix in ["+00:00", "+00", "Z", " UTC"] {
        if let Some(stripped) = s.strip_suffix(suffix) {
            s = stripped.to_string();
            break;
        }
    }
    if s.len() == 10 && s.as_bytes().get(4) == Some(&b'-') {
        s.push_str(" 00:00:00");
    }
    trim_fraction(&s).to_string()
}

/// JSON with object keys sorted, whatever serde_json's map order is.
fn json(v: &serde_json::Value, out: &mut String) {
    match v {
        serde_json::Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::Value::String(k.clone()).to_string());
                out.push(':');
                if let Some(inner) = map.get(k) {
                    json(inner, out);
                }
            }
            out.push('}');
        }
        serde_json::Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                json(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// A 64-bit hash of a canonical row; NULL and '' hash differently.
pub(crate) fn row_hash<'a>(values: impl Iterator<Item = Option<&'a str>>) -> u64 {
    let mut h = DefaultHasher::new();
    for v in values {
        match v {
            None => h.write_u8(0),
            Some(s) => {
                h.write_u8(1);
                h.write_usize(s.len());
                h.write(s.as_bytes());
            }
        }
    }
    h.finish()
}

/// Renders a key as the operator reads it: `id=42`, `a=1,b=x`.
pub(crate) fn key_display(names: &[&str], values: &[Option<String>]) -> String {
    let mut out = String::new();
    for (i, (name, value)) in names.iter().zip(values).enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(name);
        out.push('=');
        match value {
            None => out.push_str("NULL"),
            Some(v) if v.is_empty() || v.contains([',', '=', ' ', '\'']) => {
                out.push('\'');
                out.push_str(&v.replace('\'', "''"));
                out.push('\'');
            }
            Some(v) => out.push_str(v),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_lose_trailing_zeros_only() {
        assert_eq!(decimal("1.50"), "1.5");
        assert_eq!(decimal("42.000"), "42");
        assert_eq!(decimal("-0.00"), "0");
        assert_eq!(decimal("0.05"), "0.05");
        assert_eq!(decimal("100"), "100");
        assert_eq!(decimal("-12.340"), "-12.34");
    }

    #[test]
    fn timestamps_agree_across_engines() {
        let mysql = value(Canon::Timestamp, "2024-01-02 03:04:05.120000");
        let pg = value(Canon::Timestamp, "2024-01-02 03:04:05.12");
        assert_eq!(mysql, pg);
        assert_eq!(
            value(Canon::Timestamp, "2024-01-02 03:04:05.000000"),
            "2024-01-02 03:04:05"
        );
        assert_eq!(
            value(Canon::Timestamp, "2024-01-02 03:04:05+00"),
            "2024-01-02 03:04:05"
        );
        assert_ne!(
            value(Canon::Timestamp, "2024-01-02 03:04:05.120001"),
            value(Canon::Timestamp, "2024-01-02 03:04:05.12")
        );
    }

    #[test]
    fn floats_compare_at_the_narrower_precision() {
        assert_eq!(value(Canon::Float { single: true }, "1.1"), "1.1");
        assert_eq!(
            value(Canon::Float { single: false }, "0.1"),
            value(Canon::Float { single: false }, "0.10000000000000000555")
        );
        assert_eq!(value(Canon::Float { single: false }, "-0"), "0");
    }

    #[test]
    fn null_and_empty_hash_differently() {
        assert_ne!(
            row_hash([None].into_iter()),
            row_hash([Some("")].into_iter())
        );
        assert_ne!(
            row_hash([Some("a"), Some("")].into_iter()),
            row_hash([Some(""), Some("a")].into_iter())
        );
    }

    #[test]
    fn pairs_pick_the_common_form() {
        use TypeClass as T;
        let int = T::Int {
            unsigned: false,
            bool_like: false,
        };
        let tiny1 = T::Int {
            unsigned: false,
            bool_like: true,
        };
        assert_eq!(pair(tiny1, T::Bool), Canon::Bool);
        assert_eq!(pair(int, int), Canon::Int);
        assert_eq!(pair(T::Decimal, T::Decimal), Canon::Decimal);
        assert_eq!(
            pair(T::Timestamp { tz: true }, T::Timestamp { tz: false }),
            Canon::Timestamp
        );
        assert_eq!(pair(T::Text, T::Json), Canon::Json);
        assert_eq!(pair(T::Binary, T::Binary), Canon::Binary);
        assert_eq!(pair(T::Float32, T::Float32), Canon::Float { single: true });
    }

    #[test]
    fn keys_render_plainly() {
        assert_eq!(key_display(&["id"], &[Some("42".into())]), "id=42");
        assert_eq!(
            key_display(&["a", "b"], &[Some("1".into()), Some("x y".into())]),
            "a=1,b='x y'"
        );
    }

    #[test]
    fn json_keys_are_sorted() {
        assert_eq!(
            value(Canon::Json, r#"{"b": 1, "a": [true, null]}"#),
            r#"{"a":[true,null],"b":1}"#
        );
    }
}
