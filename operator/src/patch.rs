//! JSON patches (RFC 6902) built from typed operations: paths are made from tokens, so a name
//! or an index is escaped as it must be and a patch cannot fail to parse at run time.
//!
//! This module builds operations only; it never talks to the API.

use json_patch::jsonptr::{PointerBuf, Token};
use json_patch::{AddOperation, Patch, PatchOperation, RemoveOperation, TestOperation};
use serde_json::Value;

/// The JSON pointer of `tokens`, e.g. `["status", "members", 3]` → `/status/members/3`.
pub fn pointer<'t>(tokens: impl IntoIterator<Item = Token<'t>>) -> PointerBuf {
    PointerBuf::from_tokens(tokens)
}

/// Fails the whole patch unless the value at `path` is `value`.
pub fn test(path: PointerBuf, value: impl Into<Value>) -> PatchOperation {
    PatchOperation::Test(TestOperation {
        path,
        value: value.into(),
    })
}

/// Adds `value` at `path` (`-` as the last token appends to an array).
pub fn add(path: PointerBuf, value: impl Into<Value>) -> PatchOperation {
    PatchOperation::Add(AddOperation {
        path,
        value: value.into(),
    })
}

/// Removes the value at `path`.
pub fn remove(path: PointerBuf) -> PatchOperation {
    PatchOperation::Remove(RemoveOperation { path })
}

/// The patch of `operations`, in order.
pub fn of(operations: Vec<PatchOperation>) -> Patch {
    Patch(operations)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_serialize_as_rfc_6902_with_escaped_paths() {
        let patch = of(vec![
            test(
                pointer([
                    Token::from("status"),
                    Token::from("members"),
                    Token::from(2usize),
                ]),
                "a/b~c",
            ),
            remove(pointer([Token::from("metadata"), Token::from("a/b~c")])),
            add(
                pointer([
                    Token::from("metadata"),
                    Token::from("finalizers"),
                    Token::from("-"),
                ]),
                "x",
            ),
        ]);
        assert_eq!(
            serde_json::to_value(&patch).unwrap(),
            serde_json::json!([
                {"op": "test", "path": "/status/members/2", "value": "a/b~c"},
                {"op": "remove", "path": "/metadata/a~1b~0c"},
                {"op": "add", "path": "/metadata/finalizers/-", "value": "x"},
            ])
        );
    }
}
