//! KQL parser: logos lexer, lalrpop grammar, AST with spans, Display back to KQL.
