//! API errors in authentik's (DRF's) body shapes.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// Field-keyed validation messages: `{"name": ["This field is required."]}`.
pub(crate) type FieldErrors = BTreeMap<String, Vec<String>>;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ApiError {
    /// 400 with field-keyed messages (`non_field_errors` for object-level ones).
    Validation(FieldErrors),
    /// 404 `No <Model> matches the given query.`
    NotFound(&'static str),
    /// Any other `{"detail": ...}` error.
    Detail(StatusCode, String),
}

impl ApiError {
    pub(crate) fn field(field: &str, message: impl Into<String>) -> Self {
        ApiError::Validation(BTreeMap::from([(field.to_owned(), vec![message.into()])]))
    }

    pub(crate) fn invalid_page() -> Self {
        ApiError::Detail(StatusCode::NOT_FOUND, "Invalid page.".to_owned())
    }

    pub(crate) fn status(&self) -> StatusCode {
        match self {
            ApiError::Validation(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Detail(status, _) => *status,
        }
    }

    pub(crate) fn body(&self) -> Value {
        match self {
            ApiError::Validation(errors) => json!(errors),
            ApiError::NotFound(model) => {
                json!({ "detail": format!("No {model} matches the given query.") })
            }
            ApiError::Detail(_, detail) => json!({ "detail": detail }),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status(), axum::Json(self.body())).into_response()
    }
}
