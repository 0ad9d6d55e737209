//! Rules: when an event matches a trigger, run actions whose parameters are
//! rendered from the event with minijinja templates.
//!
//! A trigger names an event kind, optionally an instance or connector, and
//! conditions on payload fields (`ticket.priority` `gte` 4). An action names
//! an instance and a method, with parameters whose strings are templates
//! over the event (`"Urgent ticket: {{ ticket.subject }}"`). Everything is
//! checked when the rule is saved (paths, operators, template syntax), and
//! templates render strictly: a missing field is an error, not an empty
//! string, so a message never goes out half-filled.

use minijinja::{Environment, UndefinedBehavior};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::store::EventRecord;

/// What a rule matches.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Trigger {
    /// Event kind, e.g. `ticket.created`.
    pub kind: String,
    /// Only events of this instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// Only events of instances of this connector (`name` or `name@version`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connector: Option<String>,
    /// All must hold.
    #[serde(default)]
    pub conditions: Vec<Condition>,
}

/// A test on one payload field.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Condition {
    /// Dot path into the payload, e.g. `ticket.priority` or `items.0.id`.
    pub path: String,
    /// The comparison.
    pub op: Op,
    /// The operand (unused by `exists`; an array for `in`).
    #[serde(default)]
    #[schema(value_type = Value)]
    pub value: Value,
}

/// Comparison operators.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// Equal (JSON equality).
    Eq,
    /// Not equal.
    Ne,
    /// Greater than (numbers, or strings lexicographically).
    Gt,
    /// Greater or equal.
    Gte,
    /// Less than.
    Lt,
    /// Less or equal.
    Lte,
    /// The field's value is one of `value` (an array).
    In,
    /// The field is present (and not null).
    Exists,
}

/// One thing a rule does.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Action {
    /// Instance to invoke.
    pub instance: String,
    /// Method to call.
    pub method: String,
    /// Parameters; every string is a template over the event.
    #[serde(default = "empty_object")]
    #[schema(value_type = Object)]
    pub parameters: Value,
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

/// Checks a dot path's syntax.
pub fn check_path(path: &str) -> Result<(), String> {
    let ok = !path.is_empty()
        && path.split('.').all(|seg| {
            !seg.is_empty()
                && seg
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "condition path {path:?} must be dot-separated field names (letters, digits, `_`, `-`), e.g. `ticket.priority`"
        ))
    }
}

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env
}

/// Checks every template in `parameters` compiles.
pub fn check_templates(parameters: &Value) -> Result<(), String> {
    let env = environment();
    let mut result = Ok(());
    walk(parameters, &mut |s| {
        if result.is_ok()
            && let Err(e) = env.template_from_str(s)
        {
            result = Err(format!("template {s:?}: {e}"));
        }
    });
    result
}

fn walk(v: &Value, f: &mut impl FnMut(&str)) {
    match v {
        Value::String(s) => f(s),
        Value::Array(a) => a.iter().for_each(|x| walk(x, f)),
        Value::Object(o) => o.values().for_each(|x| walk(x, f)),
        _ => {}
    }
}

/// Checks a trigger's conditions.
pub fn check_trigger(t: &Trigger) -> Result<(), String> {
    if t.kind.trim().is_empty() {
        return Err("trigger.kind must not be empty".into());
    }
    for c in &t.conditions {
        check_path(&c.path)?;
        if c.op == Op::In && !c.value.is_array() {
            return Err(format!(
                "condition on {:?}: `in` needs an array value",
                c.path
            ));
        }
    }
    Ok(())
}

/// The template context of an event: its payload's fields at the top level,
/// plus `event` (id, kind, instance, sourceId, receivedAt).
pub fn context(event: &EventRecord) -> Value {
    let mut ctx = match &event.payload {
        Value::Object(o) => Value::Object(o.clone()),
        other => serde_json::json!({ "payload": other }),
    };
    ctx["event"] = serde_json::json!({
        "id": event.id,
        "kind": event.kind,
        "instance": event.instance,
        "sourceId": event.source_id,
        "receivedAt": event.received_at,
    });
    ctx
}

/// Renders every string of `parameters` against `ctx`.
pub fn render(parameters: &Value, ctx: &Value) -> Result<Value, String> {
    let env = environment();
    fn go(env: &Environment<'_>, v: &Value, ctx: &Value) -> Result<Value, String> {
        Ok(match v {
            Value::String(s) => Value::String(
                env.render_str(s, ctx)
                    .map_err(|e| format!("template {s:?}: {e}"))?,
            ),
            Value::Array(a) => Value::Array(
                a.iter()
                    .map(|x| go(env, x, ctx))
                    .collect::<Result<_, _>>()?,
            ),
            Value::Object(o) => Value::Object(
                o.iter()
                    .map(|(k, x)| Ok((k.clone(), go(env, x, ctx)?)))
                    .collect::<Result<_, String>>()?,
            ),
            other => other.clone(),
        })
    }
    go(&env, parameters, ctx)
}

fn lookup<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(v, |v, seg| match v {
        Value::Object(o) => o.get(seg),
        Value::Array(a) => seg.parse::<usize>().ok().and_then(|i| a.get(i)),
        _ => None,
    })
}

fn compare(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

impl Condition {
    /// Whether the payload satisfies it.
    pub fn holds(&self, payload: &Value) -> bool {
        use std::cmp::Ordering::*;
        let field = lookup(payload, &self.path).filter(|v| !v.is_null());
        match self.op {
            Op::Exists => field.is_some(),
            Op::Eq => field == Some(&self.value),
            Op::Ne => field != Some(&self.value),
            Op::In => field.is_some_and(|f| self.value.as_array().is_some_and(|a| a.contains(f))),
            Op::Gt => field.and_then(|f| compare(f, &self.value)) == Some(Greater),
            Op::Gte => matches!(
                field.and_then(|f| compare(f, &self.value)),
                Some(Greater | Equal)
            ),
            Op::Lt => field.and_then(|f| compare(f, &self.value)) == Some(Less),
            Op::Lte => matches!(
                field.and_then(|f| compare(f, &self.value)),
                Some(Less | Equal)
            ),
        }
    }
}

impl Trigger {
    /// Whether `event` matches.
    pub fn matches(&self, event: &EventRecord) -> bool {
        self.kind == event.kind
            && self.instance.as_ref().is_none_or(|i| *i == event.instance)
            && self.connector.as_ref().is_none_or(|c| {
                *c == event.connector || event.connector.split('@').next() == Some(c.as_str())
            })
            && self.conditions.iter().all(|c| c.holds(&event.payload))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn event(payload: Value) -> EventRecord {
        EventRecord {
            id: "evt_1".into(),
            instance: "inst_a".into(),
            connector: "desk@1.0.0".into(),
            kind: "ticket.created".into(),
            source_id: "42".into(),
            payload,
            delivery_id: None,
            received_at: "2026-01-01T00:00:00Z".into(),
        }
    }

    fn cond(path: &str, op: Op, value: Value) -> Condition {
        Condition {
            path: path.into(),
            op,
            value,
        }
    }

    #[test]
    fn conditions_and_triggers() {
        let e = event(
            json!({"ticket": {"priority": 4, "tags": ["vip"], "subject": "Down", "status": "open"}}),
        );
        let p = &e.payload;
        assert!(cond("ticket.priority", Op::Gte, json!(4)).holds(p));
        assert!(!cond("ticket.priority", Op::Gt, json!(4)).holds(p));
        assert!(cond("ticket.priority", Op::Lt, json!(5)).holds(p));
        assert!(cond("ticket.status", Op::In, json!(["open", "new"])).holds(p));
        assert!(cond("ticket.tags.0", Op::Eq, json!("vip")).holds(p));
        assert!(cond("ticket.subject", Op::Exists, Value::Null).holds(p));
        assert!(!cond("ticket.missing", Op::Exists, Value::Null).holds(p));
        assert!(
            !cond("ticket.priority", Op::Gt, json!("3")).holds(p),
            "no cross-type order"
        );
        assert!(cond("ticket.priority", Op::Ne, json!(3)).holds(p));
        let t = Trigger {
            kind: "ticket.created".into(),
            instance: None,
            connector: Some("desk".into()),
            conditions: vec![cond("ticket.priority", Op::Eq, json!(4))],
        };
        assert!(t.matches(&e));
        assert!(
            !Trigger {
                kind: "ticket.updated".into(),
                ..t.clone()
            }
            .matches(&e)
        );
        assert!(
            !Trigger {
                instance: Some("inst_b".into()),
                ..t.clone()
            }
            .matches(&e)
        );
    }

    #[test]
    fn templates_render_strictly_and_check_at_save() {
        let e = event(json!({"ticket": {"subject": "Down"}}));
        let out = render(
            &json!({"text": "Urgent ticket: {{ ticket.subject }} ({{ event.sourceId }})", "n": 1}),
            &context(&e),
        )
        .unwrap();
        assert_eq!(out, json!({"text": "Urgent ticket: Down (42)", "n": 1}));
        assert!(render(&json!({"t": "{{ ticket.nope }}"}), &context(&e)).is_err());
        assert!(check_templates(&json!({"t": "{{ ticket.subject "})).is_err());
        assert!(check_templates(&json!({"t": ["ok {{ a }}"]})).is_ok());
        assert!(check_path("ticket..priority").is_err());
        assert!(check_path("ticket.priority").is_ok());
        let bad_in = Trigger {
            kind: "k".into(),
            instance: None,
            connector: None,
            conditions: vec![cond("a", Op::In, json!(1))],
        };
        assert!(check_trigger(&bad_in).is_err());
    }
}
