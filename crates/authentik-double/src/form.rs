//! Reads a request body field by field the way a DRF serializer does: every field is checked,
//! messages are collected per field, and only a body without field errors may be applied.

use serde_json::{Map, Value};
use uuid::Uuid;

use crate::error::{ApiError, FieldErrors};

pub(crate) const REQUIRED: &str = "This field is required.";
pub(crate) const NOT_NULL: &str = "This field may not be null.";
pub(crate) const NOT_BLANK: &str = "This field may not be blank.";

/// Python's name of a JSON value's type, as DRF puts it in messages.
fn py_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "NoneType",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

fn invalid_pk(raw: &str) -> String {
    format!("Invalid pk \"{raw}\" - object does not exist.")
}

/// Whether a field may be omitted: always on PATCH, and for optional fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Need {
    Required,
    Optional,
}

#[derive(Debug)]
pub(crate) struct Form<'a> {
    data: &'a Map<String, Value>,
    partial: bool,
    errors: FieldErrors,
}

impl<'a> Form<'a> {
    /// `partial` is true for PATCH: missing required fields are then fine.
    pub(crate) fn new(body: &'a Value, partial: bool) -> Result<Self, ApiError> {
        match body {
            Value::Object(data) => Ok(Form {
                data,
                partial,
                errors: FieldErrors::new(),
            }),
            other => Err(ApiError::field(
                "non_field_errors",
                format!(
                    "Invalid data. Expected a dictionary, but got {}.",
                    py_type(other)
                ),
            )),
        }
    }

    pub(crate) fn has(&self, field: &str) -> bool {
        self.data.contains_key(field)
    }

    pub(crate) fn error(&mut self, field: &str, message: impl Into<String>) {
        self.errors
            .entry(field.to_owned())
            .or_default()
            .push(message.into());
    }

    pub(crate) fn has_error(&self, field: &str) -> bool {
        self.errors.contains_key(field)
    }

    /// The raw value if present; records "required" when absent on a full write.
    fn take(&mut self, field: &str, need: Need) -> Option<&'a Value> {
        match self.data.get(field) {
            Some(v) => Some(v),
            None => {
                if need == Need::Required && !self.partial {
                    self.error(field, REQUIRED);
                }
                None
            }
        }
    }

    /// A non-null value, recording "may not be null" for null.
    fn take_non_null(&mut self, field: &str, need: Need) -> Option<&'a Value> {
        match self.take(field, need)? {
            Value::Null => {
                self.error(field, NOT_NULL);
                None
            }
            v => Some(v),
        }
    }

    /// A CharField. Numbers and booleans are coerced to strings as DRF does.
    pub(crate) fn string(&mut self, field: &str, need: Need, allow_blank: bool) -> Option<String> {
        let s = match self.take_non_null(field, need)? {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => if *b { "True" } else { "False" }.to_owned(),
            _ => {
                self.error(field, "Not a valid string.");
                return None;
            }
        };
        if !allow_blank && s.trim().is_empty() {
            self.error(field, NOT_BLANK);
            return None;
        }
        Some(s)
    }

    /// A nullable CharField: `Some(None)` for an explicit null.
    pub(crate) fn nullable_string(&mut self, field: &str) -> Option<Option<String>> {
        match self.take(field, Need::Optional)? {
            Value::Null => Some(None),
            _ => self.string(field, Need::Optional, true).map(Some),
        }
    }

    /// A CharField restricted to `choices`.
    pub(crate) fn choice(&mut self, field: &str, need: Need, choices: &[&str]) -> Option<String> {
        let s = self.string(field, need, true)?;
        if choices.contains(&s.as_str()) {
            Some(s)
        } else {
            self.error(field, format!("\"{s}\" is not a valid choice."));
            None
        }
    }

    /// An http/https URL (Django's URL validator, domainless hosts allowed as authentik does).
    pub(crate) fn url(&mut self, field: &str, need: Need, allow_blank: bool) -> Option<String> {
        let s = self.string(field, need, allow_blank)?;
        if s.is_empty() || is_http_url(&s) {
            Some(s)
        } else {
            self.error(field, "Enter a valid URL.");
            None
        }
    }

    pub(crate) fn bool(&mut self, field: &str) -> Option<bool> {
        match self.take_non_null(field, Need::Optional)? {
            Value::Bool(b) => Some(*b),
            Value::String(s) if matches!(s.as_str(), "true" | "True" | "1") => Some(true),
            Value::String(s) if matches!(s.as_str(), "false" | "False" | "0") => Some(false),
            Value::Number(n) if n.as_i64() == Some(1) => Some(true),
            Value::Number(n) if n.as_i64() == Some(0) => Some(false),
            _ => {
                self.error(field, "Must be a valid boolean.");
                None
            }
        }
    }

    pub(crate) fn int(&mut self, field: &str, need: Need) -> Option<i64> {
        match self.take_non_null(field, need)? {
            Value::Number(n) if n.as_i64().is_some() => n.as_i64(),
            Value::String(s) if s.trim().parse::<i64>().is_ok() => s.trim().parse().ok(),
            _ => {
                self.error(field, "A valid integer is required.");
                None
            }
        }
    }

    /// A JSON object field (`config`, `attributes`).
    pub(crate) fn object(&mut self, field: &str, need: Need) -> Option<Value> {
        match self.take_non_null(field, need)? {
            v @ Value::Object(_) => Some(v.clone()),
            other => {
                self.error(
                    field,
                    format!(
                        "Expected a dictionary of items but got type \"{}\".",
                        py_type(other)
                    ),
                );
                None
            }
        }
    }

    /// A foreign key (`PrimaryKeyRelatedField`). Returns `Some(None)` for an allowed null.
    pub(crate) fn reference<K: PrimaryKey>(
        &mut self,
        field: &str,
        need: Need,
        nullable: bool,
        exists: impl Fn(K) -> bool,
    ) -> Option<Option<K>> {
        let v = self.take(field, need)?;
        // DRF turns "" into None for relational fields before validating.
        if v.is_null() || v.as_str() == Some("") {
            if nullable {
                return Some(None);
            }
            self.error(field, NOT_NULL);
            return None;
        }
        match check_reference(v, &exists) {
            Ok(key) => Some(Some(key)),
            Err(msg) => {
                self.error(field, msg);
                None
            }
        }
    }

    /// A many-to-many list of keys; the first bad item decides the message, as in DRF.
    pub(crate) fn references<K: PrimaryKey>(
        &mut self,
        field: &str,
        need: Need,
        exists: impl Fn(K) -> bool,
    ) -> Option<Vec<K>> {
        let items = self.list(field, need)?;
        let parsed: Result<Vec<K>, String> =
            items.iter().map(|v| check_reference(v, &exists)).collect();
        parsed.map_err(|msg| self.error(field, msg)).ok()
    }

    fn list(&mut self, field: &str, need: Need) -> Option<&'a Vec<Value>> {
        match self.take_non_null(field, need)? {
            Value::Array(items) => Some(items),
            other => {
                self.error(
                    field,
                    format!(
                        "Expected a list of items but got type \"{}\".",
                        py_type(other)
                    ),
                );
                None
            }
        }
    }

    /// Field errors so far, as a 400.
    pub(crate) fn finish(self) -> Result<(), ApiError> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Validation(self.errors))
        }
    }
}

/// The key type a relational field refers to by: authentik's models use uuids or integers.
pub(crate) trait PrimaryKey: Copy {
    /// Reads a key the way DRF's `PrimaryKeyRelatedField` does, or says why it cannot.
    fn parse(v: &Value) -> Result<Self, String>;
}

impl PrimaryKey for Uuid {
    fn parse(v: &Value) -> Result<Self, String> {
        let Value::String(raw) = v else {
            return Err(incorrect_pk_type(v));
        };
        Uuid::parse_str(raw).map_err(|_| format!("“{raw}” is not a valid UUID."))
    }
}

impl PrimaryKey for i64 {
    fn parse(v: &Value) -> Result<Self, String> {
        match v {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.parse().ok(),
            _ => None,
        }
        .ok_or_else(|| incorrect_pk_type(v))
    }
}

fn incorrect_pk_type(v: &Value) -> String {
    format!(
        "Incorrect type. Expected pk value, received {}.",
        py_type(v)
    )
}

fn check_reference<K: PrimaryKey>(v: &Value, exists: &impl Fn(K) -> bool) -> Result<K, String> {
    let key = K::parse(v)?;
    if exists(key) {
        return Ok(key);
    }
    // DRF names the value as sent.
    let raw = match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    Err(invalid_pk(&raw))
}

/// Django's `URLValidator(schemes=("http", "https"))` in authentik's domainless variant.
pub(crate) fn is_http_url(s: &str) -> bool {
    if s.chars().any(char::is_whitespace) {
        return false;
    }
    match url::Url::parse(s) {
        Ok(u) => {
            matches!(u.scheme(), "http" | "https") && u.host_str().is_some_and(|h| !h.is_empty())
        }
        Err(_) => false,
    }
}

/// authentik's `timedelta_string_validator`: `hours=1;minutes=2` with timedelta keywords.
pub(crate) fn is_timedelta_string(s: &str) -> bool {
    timedelta_seconds(s).is_some()
}

/// Seconds in an authentik timedelta string (`hours=1;minutes=30`), `None` if malformed.
pub(crate) fn timedelta_seconds(s: &str) -> Option<f64> {
    const UNITS: [(&str, f64); 7] = [
        ("weeks", 604_800.0),
        ("days", 86_400.0),
        ("hours", 3_600.0),
        ("minutes", 60.0),
        ("seconds", 1.0),
        ("milliseconds", 0.001),
        ("microseconds", 0.000_001),
    ];
    if s.is_empty() {
        return None;
    }
    s.split(';').try_fold(0.0, |total, part| {
        let (key, value) = part.split_once('=')?;
        let (_, unit) = UNITS.iter().find(|(k, _)| *k == key.trim())?;
        Some(total + value.trim().parse::<f64>().ok()? * unit)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn url_validation() {
        assert!(is_http_url("https://grafana.example.com"));
        assert!(is_http_url(
            "http://grafana.monitoring.svc.cluster.local:3000"
        ));
        assert!(!is_http_url("not a url"));
        assert!(!is_http_url("ftp://example.com"));
        assert!(!is_http_url("grafana.example.com"));
    }

    #[test]
    fn timedelta_validation() {
        assert!(is_timedelta_string("hours=1"));
        assert!(is_timedelta_string("hours=3;minutes=1"));
        assert!(is_timedelta_string("days=30"));
        assert!(!is_timedelta_string("forever"));
        assert_eq!(timedelta_seconds("hours=1"), Some(3600.0));
        assert_eq!(timedelta_seconds("days=1;minutes=1"), Some(86_460.0));
        assert_eq!(timedelta_seconds("hours=1;forever=2"), None);
        assert!(!is_timedelta_string("hours=x"));
        assert!(!is_timedelta_string("fortnights=1"));
    }

    #[test]
    fn required_is_only_enforced_on_full_writes() {
        let body = json!({});
        let mut full = Form::new(&body, false).expect("object");
        assert_eq!(full.string("name", Need::Required, false), None);
        assert!(full.finish().is_err());
        let mut partial = Form::new(&body, true).expect("object");
        assert_eq!(partial.string("name", Need::Required, false), None);
        assert!(partial.finish().is_ok());
    }

    #[test]
    fn many_related_reports_the_first_unknown_pk() {
        let body = json!({"providers": [1, 99999]});
        let mut form = Form::new(&body, true).expect("object");
        assert_eq!(
            form.references::<i64>("providers", Need::Required, |pk| pk == 1),
            None
        );
        assert_eq!(
            form.finish(),
            Err(ApiError::field(
                "providers",
                "Invalid pk \"99999\" - object does not exist."
            ))
        );
    }

    #[test]
    fn non_object_body_is_rejected() {
        let body = json!([1]);
        assert_eq!(
            Form::new(&body, false).err(),
            Some(ApiError::field(
                "non_field_errors",
                "Invalid data. Expected a dictionary, but got list."
            ))
        );
    }
}
