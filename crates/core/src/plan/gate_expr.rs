//! Parses a gate written as text: `<input> <op> <value> [for <duration>] [fresh <duration>]`,
//! e.g. `cdc.latency_target <= 0 for 30s`, `dns.status == INSYNC`, `source.read_only == true`.

use super::input::{Input, InputType};
use super::{Gate, Op, Value};

/// A parse failure with the byte offset inside the gate text where it was found.
#[derive(Debug, Clone, PartialEq)]
pub struct ExprError {
    pub offset: usize,
    pub message: String,
    pub hint: Option<String>,
}

fn err(offset: usize, message: impl Into<String>, hint: Option<String>) -> ExprError {
    ExprError {
        offset,
        message: message.into(),
        hint,
    }
}

/// Splits on whitespace, keeping double-quoted strings whole. Returns (offset, token).
fn tokens(text: &str) -> Result<Vec<(usize, String)>, ExprError> {
    let mut out = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some(&(i, c)) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        if c == '"' {
            chars.next();
            let mut s = String::from("\"");
            let mut closed = false;
            for (_, c) in chars.by_ref() {
                if c == '"' {
                    closed = true;
                    break;
                }
                s.push(c);
            }
            if !closed {
                return Err(err(
                    i,
                    "unterminated quoted value",
                    Some("close the value with a double quote".into()),
                ));
            }
            out.push((i, s));
            continue;
        }
        // Operators stand alone even without spaces: `a<=0`.
        if "<>=!".contains(c) {
            let mut s = String::new();
            while let Some(&(_, c)) = chars.peek() {
                if "<>=!".contains(c) {
                    s.push(c);
                    chars.next();
                } else {
                    break;
                }
            }
            out.push((i, s));
            continue;
        }
        let mut s = String::new();
        while let Some(&(_, c)) = chars.peek() {
            if c.is_whitespace() || "<>=!\"".contains(c) {
                break;
            }
            s.push(c);
            chars.next();
        }
        out.push((i, s));
    }
    Ok(out)
}

fn parse_op(tok: &str) -> Option<Op> {
    Some(match tok {
        "<" => Op::Lt,
        "<=" => Op::Le,
        "==" | "=" => Op::Eq,
        "!=" => Op::Ne,
        ">=" => Op::Ge,
        ">" => Op::Gt,
        _ => return None,
    })
}

pub fn parse_duration_ms(text: &str) -> Result<i64, String> {
    let d = humantime::parse_duration(text).map_err(|e| e.to_string())?;
    i64::try_from(d.as_millis()).map_err(|_| "duration too long".to_string())
}

/// Parses one gate. `dns_values` resolves `$dns.source` and `$dns.target`.
pub fn parse(text: &str, dns_values: &dyn Fn(&str) -> Option<String>) -> Result<Gate, ExprError> {
    let toks = tokens(text)?;
    let mut it = toks.into_iter();
    let Some((input_at, input_name)) = it.next() else {
        return Err(err(
            0,
            "empty gate",
            Some("write it as `<input> <op> <value>`, e.g. `drift.rows == 0`".into()),
        ));
    };
    let input = Input::parse(&input_name).ok_or_else(|| {
        let hint = match Input::suggest(&input_name) {
            Some(s) => format!("did you mean \"{s}\"? (`cutover plan inputs` lists them all)"),
            None => "`cutover plan inputs` lists the known inputs".into(),
        };
        err(
            input_at,
            format!("unknown gate input \"{input_name}\""),
            Some(hint),
        )
    })?;
    let end = text.len();
    let (op_at, op_tok) = it.next().ok_or_else(|| {
        err(
            end,
            format!("gate on {input} has no comparison"),
            Some("add an operator and a value, e.g. `== 0`".into()),
        )
    })?;
    let op = parse_op(&op_tok).ok_or_else(|| {
        err(
            op_at,
            format!("unknown operator \"{op_tok}\""),
            Some("use one of < <= == != >= >".into()),
        )
    })?;
    let (val_at, val_tok) = it.next().ok_or_else(|| {
        err(
            end,
            format!("gate on {input} has no value after \"{op_tok}\""),
            Some("add the value to compare with".into()),
        )
    })?;
    // A probe's value is whatever its JSON says: the gate's literal names the type.
    let ty = match &input {
        Input::Probe(_) => match val_tok.as_str() {
            "true" | "false" => InputType::Bool,
            t if t.parse::<f64>().is_ok_and(f64::is_finite) => InputType::Number,
            _ => InputType::Text,
        },
        _ => input.value_type(),
    };
    let value = if let Some(quoted) = val_tok.strip_prefix('"') {
        Value::Text(quoted.to_string())
    } else if let Some(var) = val_tok.strip_prefix('$') {
        match dns_values(var) {
            Some(v) => Value::Text(v),
            None => {
                return Err(err(
                    val_at,
                    format!("unknown variable \"${var}\""),
                    Some("use $dns.source or $dns.target, with a [dns] section".into()),
                ));
            }
        }
    } else {
        match ty {
            InputType::Number => match val_tok.parse::<f64>() {
                Ok(n) if n.is_finite() => Value::Number(n),
                _ => {
                    return Err(err(
                        val_at,
                        format!("{input} is a number, but \"{val_tok}\" is not"),
                        Some("write a plain number, e.g. 0 or 2.5".into()),
                    ));
                }
            },
            InputType::Bool => match val_tok.as_str() {
                "true" | "on" | "yes" => Value::Bool(true),
                "false" | "off" | "no" => Value::Bool(false),
                _ => {
                    return Err(err(
                        val_at,
                        format!("{input} is true or false, not \"{val_tok}\""),
                        Some("write true or false".into()),
                    ));
                }
            },
            InputType::Text => Value::Text(val_tok.clone()),
        }
    };
    match (&value, ty) {
        (Value::Text(_), InputType::Number) => {
            return Err(err(
                val_at,
                format!("{input} is a number, but the gate compares it with text"),
                Some("write a plain number".into()),
            ));
        }
        (Value::Text(_), InputType::Text) | (Value::Bool(_), InputType::Bool)
            if !matches!(op, Op::Eq | Op::Ne) =>
        {
            return Err(err(
                op_at,
                format!("{input} is {}; only == and != compare it", ty.as_str()),
                Some("use == or !=".into()),
            ));
        }
        _ => {}
    }
    let mut sustain_ms = None;
    let mut fresh_ms = None;
    while let Some((kw_at, kw)) = it.next() {
        let (slot, range) = match kw.as_str() {
            "for" => (&mut sustain_ms, super::limits::SUSTAIN_MS),
            "fresh" => (&mut fresh_ms, super::limits::FRESH_MS),
            _ => {
                return Err(err(
                    kw_at,
                    format!("unexpected \"{kw}\""),
                    Some(
                        "after the value only `for <duration>` and `fresh <duration>` may follow"
                            .into(),
                    ),
                ));
            }
        };
        if slot.is_some() {
            return Err(err(kw_at, format!("\"{kw}\" given twice"), None));
        }
        let (d_at, d) = it.next().ok_or_else(|| {
            err(
                end,
                format!("\"{kw}\" needs a duration"),
                Some("e.g. 30s, 2m, 500ms".into()),
            )
        })?;
        let ms = parse_duration_ms(&d).map_err(|e| {
            err(
                d_at,
                format!("bad duration \"{d}\": {e}"),
                Some("write a duration such as 30s, 2m or 500ms".into()),
            )
        })?;
        super::limits::duration(&format!("`{kw}`"), ms, &range)
            .map_err(|p| err(d_at, p.message, Some(p.hint)))?;
        *slot = Some(ms);
    }
    // The plan sets the engine's default once it knows the engine.
    let default_fresh_ms = input.default_fresh_ms();
    Ok(Gate {
        text: text.trim().to_string(),
        input,
        op,
        value,
        sustain_ms: sustain_ms.unwrap_or(0),
        fresh_ms,
        default_fresh_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Gate, ExprError> {
        parse(s, &|v| {
            (v == "dns.target").then(|| "target.example.".to_string())
        })
    }

    #[test]
    fn parses_sustained_and_fresh() {
        let g = p("cdc.latency_target <= 0 for 30s fresh 10s").unwrap();
        assert_eq!(g.input, Input::CdcLatencyTarget);
        assert_eq!(g.op, Op::Le);
        assert_eq!(g.value, Value::Number(0.0));
        assert_eq!(g.sustain_ms, 30_000);
        assert_eq!(g.fresh_ms, Some(10_000));
    }

    #[test]
    fn parses_text_bool_and_variables() {
        assert_eq!(
            p("dns.status == INSYNC").unwrap().value,
            Value::Text("INSYNC".into())
        );
        assert_eq!(
            p("dns.status==\"IN SYNC\"").unwrap().value,
            Value::Text("IN SYNC".into())
        );
        assert_eq!(
            p("source.read_only == on").unwrap().value,
            Value::Bool(true)
        );
        assert_eq!(
            p("dns.value == $dns.target").unwrap().value,
            Value::Text("target.example.".into())
        );
    }

    #[test]
    fn errors_point_at_the_offending_token() {
        let e = p("cdc.lagg <= 0").unwrap_err();
        assert_eq!(e.offset, 0);
        assert!(e.message.contains("unknown gate input \"cdc.lagg\""));
        let e = p("drift.rows =< 0").unwrap_err();
        assert_eq!(e.offset, 11);
        let e = p("drift.rows == zero").unwrap_err();
        assert_eq!(e.offset, 14);
        let e = p("drift.rows == 0 for 3 parsecs").unwrap_err();
        assert!(e.message.starts_with("bad duration"), "{}", e.message);
        let e = p("dns.status < INSYNC").unwrap_err();
        assert!(e.message.contains("only == and !="));
        let e = p("dns.value == $nope").unwrap_err();
        assert!(e.message.contains("unknown variable"));
        let e = p("drift.rows == 0 during 5s").unwrap_err();
        assert!(e.message.contains("unexpected \"during\""));
    }
}
