//! Kusto's rules for the names of entities a command creates: databases, tables, columns,
//! functions and materialized views (the "entity names" page of the KQL reference).

use crate::error::{Result, RuntimeError};

/// The longest name Kusto accepts.
pub const MAX_NAME_CHARS: usize = 1024;

/// What kind of entity a name is for (it appears in the error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntityKind {
    Database,
    Table,
    Column,
    Function,
    MaterializedView,
}

impl EntityKind {
    fn noun(self) -> &'static str {
        match self {
            EntityKind::Database => "database",
            EntityKind::Table => "table",
            EntityKind::Column => "column",
            EntityKind::Function => "function",
            EntityKind::MaterializedView => "materialized view",
        }
    }
}

/// Checks a name given to a new entity: 1 to 1024 characters, only letters, digits, `_`,
/// spaces, `.` and `-`, not only spaces, and not starting or ending with `__` (names KQL
/// reserves). `generated` allows `$`, which Kusto admits in column names that operators make.
pub fn validate(kind: EntityKind, name: &str, generated: bool) -> Result<()> {
    let shown: String = name.chars().take(64).collect();
    let shown = if name.chars().count() > 64 { format!("{shown}…") } else { shown };
    let bad = |why: &str| RuntimeError::bad_request(format!("'{shown}' is not a valid {} name: {why}", kind.noun()));
    let n = name.chars().count();
    if n == 0 {
        return Err(bad("a name needs at least one character"));
    }
    if n > MAX_NAME_CHARS {
        return Err(bad(&format!("it has {n} characters, more than the {MAX_NAME_CHARS} allowed")));
    }
    if let Some(c) = name.chars().find(|c| !(c.is_alphanumeric() || matches!(c, '_' | ' ' | '.' | '-') || (generated && *c == '$'))) {
        return Err(bad(&format!(
            "it holds {c:?}; names hold only letters, digits, '_', spaces, '.' and '-'"
        )));
    }
    if !name.chars().any(|c| c.is_alphanumeric() || c == '_') {
        return Err(bad("a name needs a letter, a digit or '_' (not only spaces, dots and dashes)"));
    }
    if name.starts_with("__") || name.ends_with("__") {
        return Err(bad("names that start or end with '__' are reserved"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kusto_entity_names() {
        for ok in ["T", "Sales_2024", "my table", "a.b-c", "Ünïcödé", "_x_", &"a".repeat(1024)] {
            assert!(validate(EntityKind::Table, ok, false).is_ok(), "{ok}");
        }
        for bad in ["", "   ", "..", ". -", "a/b", "..\\x", "a;b", "a:b", "__x", "x__", "a$b", "tab\tle", &"a".repeat(1025)] {
            assert!(validate(EntityKind::Table, bad, false).is_err(), "{bad:?}");
        }
        assert!(validate(EntityKind::Column, "count_$1", true).is_ok());
        let e = validate(EntityKind::Table, &"x".repeat(5000), false).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("5000 characters") && e.len() < 300, "{e}");
    }
}
