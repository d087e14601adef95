//! OpenAPI schemas of the wire fields whose Rust type does not say what the
//! API accepts (durations written as text or seconds, names with a fixed
//! alphabet). Used by the `ToSchema` derives behind the `openapi` feature;
//! each bound comes from the constant the validation itself uses.

use crate::api::MAX_BATCH;
use crate::duration;
use crate::job::EnqueueRequest;
use crate::job::{MAX_ATTEMPTS_LIMIT, MAX_NAME_LEN, MAX_TAG_LEN, MAX_TAGS};
use utoipa::ToSchema;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, OneOfBuilder, Schema, Type};
use utoipa::openapi::{Ref, RefOr, schema::SchemaType};

/// A duration: seconds (0, or above 0 when `positive`, to
/// [`duration::MAX`]) or text such as "1h30m".
fn duration_schema(nullable: bool, positive: bool) -> Schema {
    let seconds = ObjectBuilder::new()
        .schema_type(Type::Number)
        .maximum(Some(duration::MAX.as_secs()));
    let seconds = if positive {
        seconds.exclusive_minimum(Some(0))
    } else {
        seconds.minimum(Some(0))
    };
    let text = ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .examples(["30s", "1h30m", "PT10S"]);
    let mut one_of = OneOfBuilder::new().item(seconds).item(text);
    if nullable {
        one_of = one_of.item(ObjectBuilder::new().schema_type(Type::Null));
    }
    one_of
        .description(Some(format!(
            "A duration: seconds, or text such as \"500ms\", \"1h30m\", \"7d\" or \"PT10S\"; at most {}.",
            duration::MAX_TEXT
        )))
        .into()
}

/// A duration (a query parameter's, say).
pub fn duration() -> Schema {
    duration_schema(false, false)
}

/// An optional duration (absent or `null` for none).
pub fn optional_duration() -> Schema {
    duration_schema(true, false)
}

/// An optional duration that must not be zero (a timeout, `unique_for`).
pub fn optional_positive_duration() -> Schema {
    duration_schema(true, true)
}

/// A kind, queue or event name: letters, digits and `_ - . :`.
pub fn name() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(MAX_NAME_LEN))
        .pattern(Some(format!("^[A-Za-z0-9_.:-]{{1,{MAX_NAME_LEN}}}$")))
        .into()
}

/// An optional name (a queue: absent or `null` for the kind's default).
pub fn optional_name() -> Schema {
    OneOfBuilder::new()
        .item(name())
        .item(ObjectBuilder::new().schema_type(Type::Null))
        .into()
}

/// A unique key: 1 to [`MAX_NAME_LEN`] bytes (JSON Schema counts
/// characters, so a key of multi-byte characters may be refused sooner).
pub fn optional_key() -> Schema {
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .min_length(Some(1))
        .max_length(Some(MAX_NAME_LEN))
        .into()
}

/// A job's tags: at most [`MAX_TAGS`], each 1 to [`MAX_TAG_LEN`] bytes.
pub fn tags() -> RefOr<Schema> {
    let tag = ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(MAX_TAG_LEN));
    ArrayBuilder::new()
        .items(tag)
        .max_items(Some(MAX_TAGS))
        .into()
}

/// A job's attempts: 1 to [`MAX_ATTEMPTS_LIMIT`] (absent or `null` for the kind's).
pub fn max_attempts() -> Schema {
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Integer, Type::Null]))
        .minimum(Some(1))
        .maximum(Some(MAX_ATTEMPTS_LIMIT))
        .into()
}

/// A token's scopes: at least one of `enqueue` (optionally
/// `enqueue:NAME,…`), `read`, `admin`, `work`, `metrics`.
pub fn scopes() -> RefOr<Schema> {
    let names = crate::auth::Access::ALL
        .iter()
        .filter(|a| **a != crate::auth::Access::Enqueue)
        .map(|a| a.as_str())
        .collect::<Vec<_>>()
        .join("|");
    let name = "[A-Za-z0-9_.:-]+";
    let scope = ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(format!("^(enqueue(:{name}(,{name})*)?|{names})$")));
    ArrayBuilder::new()
        .items(scope)
        .min_items(Some(1))
        .description(Some(
            "Scopes: enqueue (or enqueue:KIND_OR_EVENT,…), read, admin, work, metrics",
        ))
        .into()
}

/// Jobs sent together: 1 to [`MAX_BATCH`].
pub fn jobs() -> RefOr<Schema> {
    ArrayBuilder::new()
        .items(Ref::from_schema_name(EnqueueRequest::name()))
        .min_items(Some(1))
        .max_items(Some(MAX_BATCH))
        .into()
}

#[cfg(test)]
mod tests {
    use crate::EnqueueRequest;
    use crate::job::MAX_ATTEMPTS_LIMIT;
    use utoipa::PartialSchema;

    #[test]
    fn an_enqueue_request_schema_says_what_the_api_accepts() {
        let schema = serde_json::to_value(EnqueueRequest::schema()).unwrap();
        assert_eq!(schema["required"], serde_json::json!(["kind"]), "{schema}");
        // deny_unknown_fields: an unknown field is refused (422).
        assert_eq!(schema["additionalProperties"], false, "{schema}");
        let props = &schema["properties"];
        assert_eq!(props["max_attempts"]["maximum"], MAX_ATTEMPTS_LIMIT);
        assert_eq!(props["kind"]["pattern"], "^[A-Za-z0-9_.:-]{1,255}$");
        assert_eq!(props["timeout"]["oneOf"][0]["exclusiveMinimum"], 0);
        assert_eq!(props["delay"]["oneOf"][0]["minimum"], 0);
        assert_eq!(props["priority"]["minimum"], i16::MIN);
        assert_eq!(props["priority"]["maximum"], i16::MAX);
    }
}
