//! Management commands (requests whose first token is `.`): one [`CommandKind`] variant each.

use serde::Serialize;

use super::operator::Operator;
use super::{ColumnDecl, Ident, Literal, Param, Property, QualifiedName, Query, Span, Statement};

/// A management command, optionally followed by `| operators` that query its result
/// (`.show tables | where TableName startswith "T"`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Command {
    pub kind: CommandKind,
    /// Operators applied to the command's result table, in order.
    pub pipe: Vec<Operator>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum CommandKind {
    /// `.create database Name [persist (paths) | volatile] [ifnotexists]`
    CreateDatabase {
        name: Ident,
        persistence: Option<DatabasePersistence>,
        if_not_exists: bool,
    },
    /// `.drop database Name [ifexists]`
    DropDatabase { name: Ident, if_exists: bool },
    /// `.create table T (cols) [with (...)]` / `.create-merge table T (cols) [with (...)]`
    CreateTable {
        merge: bool,
        table: TableDef,
        with: Vec<Property>,
    },
    /// `.create tables T1 (cols), T2 (cols) [with (...)]` / `.create-merge tables ...`
    CreateTables {
        merge: bool,
        tables: Vec<TableDef>,
        with: Vec<Property>,
    },
    /// `.create table T based-on Other [with (...)]`
    CreateTableBasedOn {
        name: QualifiedName,
        source: QualifiedName,
        with: Vec<Property>,
    },
    /// `.drop table T [ifexists]`
    DropTable {
        name: QualifiedName,
        if_exists: bool,
    },
    /// `.drop tables (A, B) [ifexists]`
    DropTables {
        names: Vec<QualifiedName>,
        if_exists: bool,
    },
    /// `.show tables [details]`
    ShowTables { details: bool },
    /// `.show tables (T1, T2) [details]`
    ShowTablesSubset {
        names: Vec<QualifiedName>,
        details: bool,
    },
    /// `.show table T`
    ShowTable { name: QualifiedName },
    /// `.show table T schema as json` / `.show table T cslschema`
    ShowTableSchema {
        name: QualifiedName,
        format: SchemaFormat,
    },
    /// `.show table T details`
    ShowTableDetails { name: QualifiedName },
    /// `.show databases`
    ShowDatabases,
    /// `.show databases [(A, B)] [details]` (at least one of the two parts).
    ShowDatabasesSubset { names: Vec<Ident>, details: bool },
    /// `.show database [Name] schema [as json|csl script] [with (...)]`
    ShowDatabaseSchema {
        name: Option<Ident>,
        format: SchemaFormat,
        with: Vec<Property>,
    },
    /// `.show functions`
    ShowFunctions,
    /// `.show function F`
    ShowFunction { name: Ident },
    /// `.ingest inline into table T [with (...)] <| data`; `data` is everything after `<|`,
    /// verbatim from its first character that is no space or line break.
    IngestInline {
        table: QualifiedName,
        with: Vec<Property>,
        data: String,
    },
    /// `.ingest [async] into table T (sources) [with (...)]`; sources are string literals
    /// (possibly obfuscated `h'...'`).
    Ingest {
        is_async: bool,
        table: QualifiedName,
        sources: Vec<Literal>,
        with: Vec<Property>,
    },
    /// `.set|.append|.set-or-append|.set-or-replace [async] T [with (...)] <| query`
    TableFromQuery {
        mode: TableWriteMode,
        is_async: bool,
        table: QualifiedName,
        with: Vec<Property>,
        query: Query,
    },
    /// `.create|.create-or-alter|.alter function [ifnotexists] [with (...)] F(params) { body }`
    CreateFunction {
        mode: FunctionWriteMode,
        if_not_exists: bool,
        with: Vec<Property>,
        name: Ident,
        params: Vec<Param>,
        body: Vec<Statement>,
        /// Span of the `{ ... }` body, braces included: the runtime may store
        /// `text[body_span]` as the function's text.
        body_span: Span,
    },
    /// `.drop function F [ifexists]`
    DropFunction { name: Ident, if_exists: bool },
    /// `.drop functions (F1, F2) [ifexists]`
    DropFunctions { names: Vec<Ident>, if_exists: bool },
    /// `.alter table|materialized-view X policy row_level_security enable|disable
    /// [with (...)] "query"`
    AlterRowLevelSecurity {
        target: PolicyTarget,
        enable: bool,
        with: Vec<Property>,
        query: String,
    },
    /// `.show table T|* policy row_level_security`, `.show materialized-view MV policy ...`
    ShowRowLevelSecurity { target: PolicyTarget },
    /// `.delete table T policy row_level_security`, `.delete materialized-view MV policy ...`
    DeleteRowLevelSecurity { target: PolicyTarget },
    /// `.alter table T policy restricted_view_access true|false`,
    /// `.alter tables (T1, T2) policy restricted_view_access true|false`
    AlterRestrictedViewAccess { target: PolicyTarget, enable: bool },
    /// `.show table T|* policy restricted_view_access`
    ShowRestrictedViewAccess { target: PolicyTarget },
    /// `.delete table T policy restricted_view_access`
    DeleteRestrictedViewAccess { target: PolicyTarget },
    /// `.add|.drop|.set <entity> <role> ('fqn', ...) [skip-results] ['notes']` and
    /// `.set <entity> <role> none [skip-results]` (then `principals` is empty and `none` set).
    ChangePrincipals {
        action: PrincipalAction,
        entity: SecurableEntity,
        /// The role name as written (`admins`, `users`, ...); validated by the runtime.
        role: Ident,
        principals: Vec<Literal>,
        none: bool,
        skip_results: bool,
        notes: Option<Literal>,
    },
    /// `.show <entity> principals`
    ShowPrincipals { entity: SecurableEntity },
    /// `.show <entity> principal ['fqn'] roles [with (...)]`, `.show principal roles`
    /// (`entity` is `None` for the latter).
    ShowPrincipalRoles {
        entity: Option<SecurableEntity>,
        principal: Option<Literal>,
        with: Vec<Property>,
    },
    /// `.clear cluster cache groupmembership with (group='...', principal='...')`
    ClearGroupMembershipCache { with: Vec<Property> },
    /// `.create [ifnotexists] materialized-view [with (...)] V on table T { query }`;
    /// `query.span` covers the text between the braces.
    CreateMaterializedView {
        if_not_exists: bool,
        with: Vec<Property>,
        name: Ident,
        source: Ident,
        query: Query,
    },
    /// `.show materialized-views`
    ShowMaterializedViews,
    /// `.show ingestion failures [with (OperationId = '...')]`
    ShowIngestionFailures { with: Vec<Property> },
    /// `.show materialized-view V`
    ShowMaterializedView { name: Ident },
    /// `.drop materialized-view V [ifexists]`
    DropMaterializedView { name: Ident, if_exists: bool },
    /// `.enable materialized-view V [with (...)]` (`enable` true), `.disable materialized-view V`
    /// (`enable` false, `with` empty).
    EnableMaterializedView {
        name: Ident,
        enable: bool,
        with: Vec<Property>,
    },
    /// `.show table T extents [hot] [where tags has 'x' [and ...]]`, `.show tables (A, B) extents`,
    /// `.show database [D] extents`, `.show cluster extents`
    ShowExtents {
        scope: ExtentScope,
        hot: bool,
        tags: Vec<TagFilter>,
    },
    /// `.drop extent ID [from T]`, `.drop extents (ID, ...) [from T]`,
    /// `.drop extents [older N days|hours] from T` / `from all tables`
    DropExtents {
        ids: Vec<Literal>,
        table: Option<QualifiedName>,
        all_tables: bool,
        /// `older N unit`: the number and the unit as written (`days`, `hours`).
        older: Option<(i64, Ident)>,
    },
    /// `.drop extents [whatif] <| .show ... extents ...` or `<| query` (its `ExtentId` column).
    DropExtentsFrom { whatif: bool, source: ExtentSource },
    /// `.alter[-merge] table T|database D|materialized-view V policy caching hot = TIMESPAN`
    AlterCachingPolicy { target: PolicyTarget, hot: i64 },
    /// `.alter[-merge] table T|database D policy retention softdelete = TIMESPAN
    /// [recoverability = enabled|disabled]`, or the policy as a JSON string.
    AlterRetentionPolicy {
        target: PolicyTarget,
        merge: bool,
        softdelete: Option<i64>,
        recoverability: Option<Ident>,
        json: Option<Literal>,
    },
    /// `.show table T|database D policy caching|retention`
    ShowDataPolicy { target: PolicyTarget, kind: DataPolicyKind },
    /// `.delete table T|database D policy caching|retention`
    DeleteDataPolicy { target: PolicyTarget, kind: DataPolicyKind },
    /// `.alter cluster policy encryption 'json'`: the key that wraps the cluster's data keys
    /// (`keyVaultUri`, `keyName`, `keyVersion`, `userIdentity`, as Azure names them).
    AlterEncryptionPolicy { policy: Literal },
    /// `.show cluster policy encryption`
    ShowEncryptionPolicy,
    /// `.delete cluster policy encryption`: back to the platform key.
    DeleteEncryptionPolicy,
    /// `.rename table T to U`
    RenameTable { name: QualifiedName, new_name: Ident },
    /// `.alter-merge table T (cols) [with (...)]`
    AlterMergeTable { table: TableDef, with: Vec<Property> },
    /// `.create[-or-alter] table T ingestion KIND mapping "Name" 'mapping'`
    CreateIngestionMapping {
        or_alter: bool,
        table: QualifiedName,
        kind: Ident,
        name: Literal,
        mapping: Literal,
    },
    /// `.show table T ingestion [KIND] mappings`, `.show table T ingestion KIND mapping "Name"`
    ShowIngestionMappings {
        table: QualifiedName,
        kind: Option<Ident>,
        name: Option<Literal>,
    },
    /// `.drop table T ingestion KIND mapping "Name"`
    DropIngestionMapping {
        table: QualifiedName,
        kind: Ident,
        name: Literal,
    },
}

/// Whose extents `.show ... extents` lists.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum ExtentScope {
    Table(QualifiedName),
    Tables(Vec<QualifiedName>),
    Database(Option<Ident>),
    Cluster,
}

/// `tags has 'x'` in `.show ... extents where ...`: `op` is `has`, `!has`, `contains` or
/// `!contains`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TagFilter {
    pub op: super::BinaryOp,
    pub value: Literal,
    pub span: Span,
}

/// What `.drop extents <|` reads the extents to drop from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum ExtentSource {
    /// `.show ... extents ...`
    Command(Box<Command>),
    /// A query with an `ExtentId` column.
    Query(Query),
}

/// Which data policy a command shows or deletes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum DataPolicyKind {
    Caching,
    Retention,
}

/// `persist (paths)` or `volatile` in `.create database`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum DatabasePersistence {
    Persist(Vec<Literal>),
    Volatile,
}

/// `T (a:long, b:string)` in `.create table(s)`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TableDef {
    pub name: QualifiedName,
    pub columns: Vec<ColumnDecl>,
    pub span: Span,
}

/// Output format of `.show ... schema`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum SchemaFormat {
    /// No `as ...` clause.
    Default,
    /// `as json`
    Json,
    /// `as csl` (table) / `cslschema`
    Csl,
    /// `as csl script` (database)
    CslScript,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum TableWriteMode {
    /// `.set`: create the table; fail if it exists.
    Set,
    /// `.append`: append to an existing table.
    Append,
    /// `.set-or-append`
    SetOrAppend,
    /// `.set-or-replace`
    SetOrReplace,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum FunctionWriteMode {
    Create,
    CreateOrAlter,
    Alter,
}

/// What a policy command applies to.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum PolicyTarget {
    /// `table T` (possibly `db.T`)
    Table(QualifiedName),
    /// `table *`
    AllTables,
    /// `tables (T1, T2)`
    Tables(Vec<QualifiedName>),
    /// `materialized-view MV`
    MaterializedView(QualifiedName),
    /// `database D` (data policies only)
    Database(Ident),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum PrincipalAction {
    Add,
    Drop,
    Set,
}

/// The entity whose principals/roles a command manages.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum SecurableEntity {
    /// `database [Name]`: `None` means the request's database.
    Database(Option<Ident>),
    Table(QualifiedName),
    Function(Ident),
    Cluster,
    MaterializedView(Ident),
    ExternalTable(Ident),
}
