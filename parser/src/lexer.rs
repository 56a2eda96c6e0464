//! KQL lexer: logos for the raw tokens, then passes that give them KQL's context rules.
//!
//! The passes, in order:
//! 1. raw tokens (logos) with literal decoding; `datetime(...)`, `timespan(...)`, `time(...)`,
//!    `guid(...)`, `long(...)`, `int(...)`, `real(...)`, `double(...)`, `decimal(...)`,
//!    `bool(...)` and `dynamic(...)` become one literal token each, as in Kusto's own lexer;
//! 2. words joined by `-` without spaces become hyphenated keywords (`project-away`,
//!    `mv-expand`, ...) so that `a - b` and `a-b` stay subtraction for other words;
//! 3. words become keywords (query keywords, or command keywords when the request starts
//!    with `.`); adjacent string literals are concatenated; `.ingest inline ... <|` takes the
//!    rest of the text verbatim from its first character that is no space or line break;
//! 4. operator parameters (`kind=inner`, `hint.strategy=shuffle`, `withsource=X`, ...) right
//!    after the operators that take them become [`Tok::ParamName`] tokens, which keeps `kind`,
//!    `flags`, ... ordinary identifiers everywhere else;
//! 5. a nesting check that bounds the depth of the AST the grammar can build.

use std::fmt;

use logos::Logos;

use crate::ast::{DynValue, LiteralKind, Span, ticks};
use crate::error::{ParseError, ParseErrorKind, clip};

/// Deepest allowed nesting of `(`, `[` and `{`.
pub const MAX_NESTING: usize = 200;
/// Upper bound on the AST depth the grammar may build (estimated from the tokens).
pub const MAX_DEPTH: usize = 1000;

/// A string literal token (decoded value).
#[derive(Debug, Clone, PartialEq)]
pub struct StrLit {
    pub value: String,
    pub obfuscated: bool,
}

/// Tokens as the grammar sees them.
#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    Ident(String),
    /// An operator parameter name before `=` (`kind`, `hint.strategy`, ...).
    ParamName(String),
    Str(StrLit),
    Long(i64),
    Real(f64),
    Timespan(i64),
    /// `datetime(...)`, `long(null)`, `dynamic({...})`, ...
    TypedLit(LiteralKind),
    /// Text after `<|` in `.ingest inline`.
    RawText(String),
    /// A string or comparison operator written as a word or symbol (`has`, `!contains_cs`, ...)
    StrOp(crate::ast::BinaryOp),
    Kw(Kw),
    /// A KQL operator Kustodian does not support (`graph-match`, `macro-expand`, ...).
    Unsupported(String),
    Pipe,
    LParen,
    RParen,
    LBracket,
    RBracket,
    LBrace,
    RBrace,
    Comma,
    Semi,
    Dot,
    DotDot,
    Assign,
    EqEq,
    NotEq,
    LtGt,
    Lt,
    LtEq,
    Gt,
    GtEq,
    EqTilde,
    NotTilde,
    Plus,
    Minus,
    Star,
    Slash,
    Percent,
    Colon,
    FatArrow,
    LtPipe,
    DollarLeft,
    DollarRight,
}

macro_rules! keywords {
    ($( $variant:ident = $text:literal ),* $(,)?) => {
        /// Keywords (query and command). Most are soft: the grammar accepts them as names.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Kw { $($variant),* }

        impl Kw {
            pub fn as_str(self) -> &'static str {
                match self { $(Kw::$variant => $text),* }
            }
        }
    };
}

keywords! {
    // statements
    Let = "let", Set = "set", Declare = "declare", QueryParameters = "query_parameters",
    Pattern = "pattern", Restrict = "restrict", Access = "access", To = "to", Alias = "alias",
    Database = "database", View = "view", Materialize = "materialize",
    // sources
    Print = "print", Range = "range", From = "from", Step = "step", Union = "union",
    Datatable = "datatable", Externaldata = "externaldata", Find = "find", Search = "search",
    Evaluate = "evaluate",
    // expression keywords
    In = "in", InCi = "in~", NotIn = "!in", NotInCi = "!in~", Between = "between",
    NotBetween = "!between", HasAny = "has_any", HasAll = "has_all", Matches = "matches",
    Regex = "regex", And = "and", Or = "or", True = "true", False = "false", Typeof = "typeof",
    // operators
    Where = "where", Filter = "filter", Project = "project", ProjectAway = "project-away",
    ProjectKeep = "project-keep", ProjectRename = "project-rename",
    ProjectReorder = "project-reorder", ProjectSmart = "project-smart", Extend = "extend",
    Summarize = "summarize", By = "by", Count = "count", Take = "take", Limit = "limit",
    Top = "top", TopNested = "top-nested", TopHitters = "top-hitters", Of = "of",
    Others = "others", Sort = "sort", Order = "order", Asc = "asc", Desc = "desc",
    Nulls = "nulls", First = "first", Last = "last", GrannyAsc = "granny-asc",
    GrannyDesc = "granny-desc", Distinct = "distinct", Join = "join", Lookup = "lookup",
    On = "on", As = "as", Getschema = "getschema", MvExpand = "mv-expand", MvExpandLegacy = "mvexpand",
    MvApply = "mv-apply", Parse = "parse", ParseWhere = "parse-where", ParseKv = "parse-kv",
    MakeSeries = "make-series", Default = "default", Serialize = "serialize",
    Sample = "sample", SampleDistinct = "sample-distinct", Render = "render",
    Invoke = "invoke", Fork = "fork", Facet = "facet", Partition = "partition", Scan = "scan",
    Output = "output", Optional = "optional", Reduce = "reduce", Consume = "consume",
    With = "with", MakeGraph = "make-graph", GraphMatch = "graph-match",
    GraphToTable = "graph-to-table", PartitionedBy = "partitioned-by",
    GraphShortestPaths = "graph-shortest-paths", GraphMarkComponents = "graph-mark-components",
    ProjectByNames = "project-by-names",
    // management commands (only recognised in requests starting with `.`)
    Create = "create", CreateMerge = "create-merge", CreateOrAlter = "create-or-alter",
    Alter = "alter", Drop = "drop", Show = "show", Delete = "delete", Add = "add",
    Append = "append", SetOrAppend = "set-or-append", SetOrReplace = "set-or-replace",
    Ingest = "ingest", Inline = "inline", Into = "into", Async = "async",
    Databases = "databases", Table = "table", Tables = "tables", Function = "function",
    Functions = "functions", Cluster = "cluster", External = "external",
    MaterializedView = "materialized-view", MaterializedViews = "materialized-views",
    Policy = "policy",
    RowLevelSecurity = "row_level_security", RestrictedViewAccess = "restricted_view_access",
    Enable = "enable", Disable = "disable", Principals = "principals", Principal = "principal",
    Roles = "roles", Schema = "schema", Cslschema = "cslschema", Details = "details",
    Ifexists = "ifexists", Ifnotexists = "ifnotexists", Persist = "persist",
    Volatile = "volatile", None = "none", SkipResults = "skip-results", Clear = "clear",
    Cache = "cache", Groupmembership = "groupmembership", Json = "json", Csl = "csl",
    Script = "script", BasedOn = "based-on", Ingestion = "ingestion", Failures = "failures",
    Extents = "extents", Extent = "extent", Hot = "hot", Caching = "caching", Encryption = "encryption",
    Retention = "retention", Softdelete = "softdelete", Recoverability = "recoverability",
    Rename = "rename", Whatif = "whatif", Older = "older", Mapping = "mapping",
    Mappings = "mappings", AlterMerge = "alter-merge",
}

/// Query-mode keyword for a word, if any.
fn query_keyword(w: &str) -> Option<Kw> {
    use Kw::*;
    Some(match w {
        "let" => Let,
        "set" => Set,
        "declare" => Declare,
        "query_parameters" => QueryParameters,
        "pattern" => Pattern,
        "restrict" => Restrict,
        "access" => Access,
        "to" => To,
        "alias" => Alias,
        "database" => Database,
        "view" => View,
        "materialize" => Materialize,
        "print" => Print,
        "range" => Range,
        "from" => From,
        "step" => Step,
        "union" => Union,
        "datatable" => Datatable,
        "externaldata" => Externaldata,
        "external_data" => Externaldata,
        "find" => Find,
        "search" => Search,
        "evaluate" => Evaluate,
        "in" => In,
        "between" => Between,
        "has_any" => HasAny,
        "has_all" => HasAll,
        "matches" => Matches,
        "regex" => Regex,
        "and" => And,
        "or" => Or,
        "true" => True,
        "false" => False,
        "typeof" => Typeof,
        "where" => Where,
        "filter" => Filter,
        "project" => Project,
        "project-away" => ProjectAway,
        "project-keep" => ProjectKeep,
        "project-rename" => ProjectRename,
        "project-reorder" => ProjectReorder,
        "project-smart" => ProjectSmart,
        "extend" => Extend,
        "summarize" => Summarize,
        "by" => By,
        "count" => Count,
        "take" => Take,
        "limit" => Limit,
        "top" => Top,
        "top-nested" => TopNested,
        "top-hitters" => TopHitters,
        "of" => Of,
        "others" => Others,
        "sort" => Sort,
        "order" => Order,
        "asc" => Asc,
        "desc" => Desc,
        "nulls" => Nulls,
        "first" => First,
        "last" => Last,
        "granny-asc" => GrannyAsc,
        "granny-desc" => GrannyDesc,
        "distinct" => Distinct,
        "join" => Join,
        "lookup" => Lookup,
        "on" => On,
        "as" => As,
        "getschema" => Getschema,
        "mv-expand" => MvExpand,
        "mvexpand" => MvExpandLegacy,
        "mv-apply" => MvApply,
        "parse" => Parse,
        "parse-where" => ParseWhere,
        "parse-kv" => ParseKv,
        "make-series" => MakeSeries,
        "default" => Default,
        "serialize" => Serialize,
        "sample" => Sample,
        "sample-distinct" => SampleDistinct,
        "render" => Render,
        "invoke" => Invoke,
        "fork" => Fork,
        "facet" => Facet,
        "partition" => Partition,
        "scan" => Scan,
        "output" => Output,
        "optional" => Optional,
        "reduce" => Reduce,
        "consume" => Consume,
        "with" => With,
        "make-graph" => MakeGraph,
        "graph-match" => GraphMatch,
        "graph-to-table" => GraphToTable,
        "partitioned-by" => PartitionedBy,
        "graph-shortest-paths" => GraphShortestPaths,
        "graph-mark-components" => GraphMarkComponents,
        "project-by-names" => ProjectByNames,
        _ => return Option::None,
    })
}

/// Command-mode keyword for a word, if any (before `<|`, `|` or `{`).
fn command_keyword(w: &str) -> Option<Kw> {
    use Kw::*;
    Some(match w {
        "create" => Create,
        "create-merge" => CreateMerge,
        "create-or-alter" => CreateOrAlter,
        "alter" => Alter,
        "drop" => Drop,
        "show" => Show,
        "delete" => Delete,
        "add" => Add,
        "set" => Set,
        "append" => Append,
        "set-or-append" => SetOrAppend,
        "set-or-replace" => SetOrReplace,
        "ingest" => Ingest,
        "inline" => Inline,
        "into" => Into,
        "async" => Async,
        "database" => Database,
        "databases" => Databases,
        "table" => Table,
        "tables" => Tables,
        "function" => Function,
        "functions" => Functions,
        "cluster" => Cluster,
        "external" => External,
        "materialized-view" => MaterializedView,
        "materialized-views" => MaterializedViews,
        "on" => On,
        "policy" => Policy,
        "row_level_security" => RowLevelSecurity,
        "restricted_view_access" => RestrictedViewAccess,
        "enable" => Enable,
        "disable" => Disable,
        "principals" => Principals,
        "principal" => Principal,
        "roles" => Roles,
        "schema" => Schema,
        "cslschema" => Cslschema,
        "details" => Details,
        "ifexists" => Ifexists,
        "ifnotexists" => Ifnotexists,
        "persist" => Persist,
        "volatile" => Volatile,
        "none" => None,
        "skip-results" => SkipResults,
        "clear" => Clear,
        "cache" => Cache,
        "groupmembership" => Groupmembership,
        "ingestion" => Ingestion,
        "failures" => Failures,
        "json" => Json,
        "csl" => Csl,
        "script" => Script,
        "based-on" => BasedOn,
        "extents" => Extents,
        "extent" => Extent,
        "hot" => Hot,
        "caching" => Caching,
        "encryption" => Encryption,
        "retention" => Retention,
        "softdelete" => Softdelete,
        "recoverability" => Recoverability,
        "rename" => Rename,
        "whatif" => Whatif,
        "older" => Older,
        "mapping" => Mapping,
        "mappings" => Mappings,
        "alter-merge" => AlterMerge,
        "as" => As,
        "with" => With,
        "true" => True,
        "false" => False,
        _ => return Option::None,
    })
}

/// Hyphenated words that form one token when written without spaces.
const HYPHENATED: &[&str] = &[
    "project-away",
    "project-keep",
    "project-rename",
    "project-reorder",
    "project-smart",
    "mv-expand",
    "mv-apply",
    "top-nested",
    "top-hitters",
    "sample-distinct",
    "parse-where",
    "parse-kv",
    "make-series",
    "make-graph",
    "graph-match",
    "graph-to-table",
    "partitioned-by",
    "graph-shortest-paths",
    "graph-mark-components",
    "project-by-names",
    "granny-asc",
    "granny-desc",
];

/// Hyphenated words of management commands.
const HYPHENATED_COMMAND: &[&str] = &[
    "create-merge",
    "create-or-alter",
    "set-or-append",
    "set-or-replace",
    "skip-results",
    "materialized-view",
    "materialized-views",
    "based-on",
    "alter-merge",
];

/// KQL operators that Kustodian does not support; they get a clear error.
const UNSUPPORTED: &[&str] = &[
    "graph-merge",
    "macro-expand",
    "assert-schema",
    "execute-and-cache",
];

/// Keywords the grammar accepts as a name (column, table, function...) in every position, so
/// `Display` may print them without brackets. Every other keyword is printed as `['kw']`.
const SOFT_KEYWORDS: &[Kw] = &[
    Kw::Declare,
    Kw::QueryParameters,
    Kw::Pattern,
    Kw::Restrict,
    Kw::Access,
    Kw::Alias,
    Kw::Database,
    Kw::Range,
    Kw::From,
    Kw::Step,
    Kw::Evaluate,
    Kw::Regex,
    Kw::Filter,
    Kw::Extend,
    Kw::Summarize,
    Kw::Count,
    Kw::Take,
    Kw::Limit,
    Kw::Top,
    Kw::Others,
    Kw::Sort,
    Kw::Order,
    Kw::Nulls,
    Kw::Distinct,
    Kw::Join,
    Kw::Lookup,
    Kw::On,
    Kw::Getschema,
    Kw::Parse,
    Kw::Default,
    Kw::Serialize,
    Kw::Render,
    Kw::Fork,
    Kw::Facet,
    Kw::Partition,
    Kw::Scan,
    Kw::Output,
    Kw::Optional,
    Kw::Reduce,
    Kw::Consume,
    Kw::With,
];

/// Words that Kusto reserves (its parser rejects them as bare names in some position), beyond
/// our own keywords. Our grammar accepts most of them as names, but `Display` brackets them so
/// that printed KQL is also valid for Kusto.
const KUSTO_RESERVED: &[&str] = &[
    "accumulate",
    "anomalychart",
    "areachart",
    "bagexpansion",
    "barchart",
    "boolean",
    "byte",
    "cachingpolicy",
    "callout",
    "cancel",
    "card",
    "char",
    "columnchart",
    "containscs",
    "cycles",
    "dataexport",
    "datascope",
    "date",
    "datetime",
    "decimal",
    "decodeblocks",
    "double",
    "dynamic",
    "earliest",
    "encodingpolicy",
    "expandoutput",
    "extent_tags_retention",
    "flags",
    "float",
    "force_remote",
    "guid",
    "harddelete",
    "hardretention",
    "hotcache",
    "int",
    "isfuzzy",
    "journal",
    "kind",
    "ladderchart",
    "latest",
    "like",
    "likecs",
    "linechart",
    "long",
    "materialize",
    "mdm",
    "missing",
    "nooptimization",
    "notcontains",
    "notcontainscs",
    "notlike",
    "notlikecs",
    "others",
    "pathformat",
    "piechart",
    "pivotchart",
    "queries",
    "query_results",
    "real",
    "relaxed",
    "restricted_view_access",
    "row_level_security",
    "rowstore",
    "rowstore_references",
    "rowstore_sealinfo",
    "rowstorepolicy",
    "rowstores",
    "scatterchart",
    "seal",
    "seals",
    "shards",
    "simple",
    "softdelete",
    "softretention",
    "sql",
    "stackedareachart",
    "statistics",
    "storedqueryresultcontainers",
    "string",
    "tablepurge",
    "time",
    "timechart",
    "timeline",
    "timepivot",
    "timespan",
    "title",
    "toscalar",
    "totable",
    "treemap",
    "uint",
    "ulong",
    "uniqueid",
    "unrestrictedviewers",
    "verbose",
    "viewers",
    "views",
    "with_itemindex",
    "with_match_id",
    "with_step_name",
    "withsource",
    "writeaheadlog",
];

/// True if Kusto's own parser needs `name` bracketed in some position where a name is expected.
pub fn is_kusto_reserved(name: &str) -> bool {
    KUSTO_RESERVED.contains(&name)
}

/// Scalar type names accepted in schemas, `typeof(...)`, parse patterns and `.create table`
/// (the union of what Kusto accepts in those places; the .NET-style names are command-only).
pub const TYPE_NAMES: &[&str] = &[
    "bool", "boolean", "date", "datetime", "decimal", "double", "dynamic", "float", "guid", "int",
    "int8", "int16", "int32", "int64", "long", "real", "string", "time", "timespan", "uint",
    "uint8", "uint16", "uint32", "uint64", "ulong", "uniqueid",
];

/// Hints accepted as `hint.<name>=value` operator parameters.
const HINT_NAMES: &[&str] = &[
    "strategy",
    "shufflekey",
    "num_partitions",
    "materialized",
    "remote",
    "distribution",
    "spread",
    "concurrency",
    "progressive_top",
    "pass_filters",
    "pass_filters_column",
];

/// Words that `Kusto` lexes as literals when followed by `(`; a function or member call with
/// such a name must be written with brackets (`['datetime'](x)`).
const LITERAL_WORDS: &[&str] = &[
    "datetime", "date", "timespan", "time", "guid", "dynamic", "long", "int", "real", "double",
    "decimal", "bool",
];

fn is_ident_text(name: &str) -> bool {
    if matches!(name, "$left" | "$right") {
        return false;
    }
    let name = name.strip_prefix('$').unwrap_or(name);
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// True if `name` can be written bare as a name anywhere a name is expected.
pub fn is_plain_name(name: &str) -> bool {
    if !is_ident_text(name) {
        return false;
    }
    if string_operator_word(name).is_some() {
        return false;
    }
    match query_keyword(name) {
        None => true,
        Some(kw) => SOFT_KEYWORDS.contains(&kw),
    }
}

/// True if `text` is a keyword that the grammar also accepts as a name.
pub fn is_soft_keyword_text(text: &str) -> bool {
    matches!(text, "view" | "typeof")
        || query_keyword(text).is_some_and(|k| SOFT_KEYWORDS.contains(&k))
}

/// True if `name` can be written bare inside a management command (before its query part).
pub fn is_plain_command_name(name: &str) -> bool {
    is_ident_text(name) && command_keyword(name).is_none() && string_operator_word(name).is_none()
}

/// True if `name` can be written bare before `(` as the name of a called function.
pub fn is_plain_callee(name: &str) -> bool {
    is_plain_name(name)
        && !LITERAL_WORDS.contains(&name)
        && !matches!(name, "view" | "typeof")
        && string_operator_word(name).is_none()
}

/// True if `name` would be read as a parameter of the operator introduced by `kw` when it is
/// written bare right after the operator keyword and followed by `=`.
pub fn is_param_name_of(kw: Kw, name: &str) -> bool {
    param_names(kw).is_some_and(|names| names.contains(&name))
}

fn param_names(kw: Kw) -> Option<&'static [&'static str]> {
    Some(match kw {
        Kw::Join | Kw::Lookup | Kw::MakeSeries | Kw::Reduce => &["kind"],
        Kw::GraphMatch => &["cycles"],
        Kw::GraphShortestPaths => &["output"],
        Kw::GraphMarkComponents => &["kind", "with_component_id"],
        Kw::Search => &["kind", "withsource"],
        Kw::Union => &["kind", "withsource", "isfuzzy"],
        Kw::MvExpand | Kw::MvExpandLegacy | Kw::MvApply => &["kind", "bagexpansion", "with_itemindex"],
        Kw::Parse | Kw::ParseWhere => &["kind", "flags"],
        Kw::Find => &["withsource"],
        Kw::Scan => &["with_match_id"],
        Kw::Consume => &["decodeblocks"],
        Kw::Summarize
        | Kw::Evaluate
        | Kw::Distinct
        | Kw::As
        | Kw::Partition
        | Kw::Sort
        | Kw::Order
        | Kw::TopNested
        | Kw::Render => &[],
        _ => return Option::None,
    })
}

// ---------------------------------------------------------------------------------------------
// Raw tokens
// ---------------------------------------------------------------------------------------------

#[derive(Logos, Debug, Clone, Copy, PartialEq)]
#[logos(skip r"[ \t\r\n\f\u{feff}]+")]
#[logos(skip(r"//[^\n]*", allow_greedy = true))]
enum Raw {
    #[regex(r"[A-Za-z_][A-Za-z0-9_]*")]
    Word,
    /// `$table` (the source column of `search`/`union withsource`) and similar names.
    #[regex(r"\$[A-Za-z_][A-Za-z0-9_]*")]
    DollarWord,
    #[token("$left")]
    DollarLeft,
    #[token("$right")]
    DollarRight,
    #[regex(r"[0-9]+")]
    Int,
    #[regex(r"0[xX][0-9a-fA-F]+")]
    Hex,
    #[regex(r"[0-9]+\.[0-9]+([eE][+-]?[0-9]+)?")]
    #[regex(r"[0-9]+[eE][+-]?[0-9]+")]
    Real,
    #[regex(r"[0-9]+(\.[0-9]+)?(d|day|days|h|hr|hrs|hour|hours|m|min|minute|minutes|s|sec|second|seconds|ms|milli|millis|millisec|millisecond|milliseconds|micro|micros|microsec|microsecond|microseconds|nano|nanos|nanosec|nanosecond|nanoseconds|tick|ticks)")]
    Timespan,
    #[regex(r#"'([^'\\\n]|\\[^\n])*'"#)]
    #[regex(r#""([^"\\\n]|\\[^\n])*""#)]
    Str,
    #[regex(r#"@'([^'\n]|'')*'"#)]
    #[regex(r#"@"([^"\n]|"")*""#)]
    VerbatimStr,
    #[regex(r#"[hH]'([^'\\\n]|\\[^\n])*'"#)]
    #[regex(r#"[hH]"([^"\\\n]|\\[^\n])*""#)]
    HStr,
    #[regex(r#"[hH]@'([^'\n]|'')*'"#)]
    #[regex(r#"[hH]@"([^"\n]|"")*""#)]
    HVerbatimStr,
    #[token("```")]
    TripleBacktick,
    #[token("~~~")]
    TripleTilde,
    #[regex(r"!(has|has_cs|hasprefix|hasprefix_cs|hassuffix|hassuffix_cs|contains|contains_cs|startswith|startswith_cs|endswith|endswith_cs|in|between)")]
    BangWord,
    #[token("in~")]
    InCi,
    #[token("!in~")]
    NotInCi,
    #[token("|")]
    Pipe,
    #[token("(")]
    LParen,
    #[token(")")]
    RParen,
    #[token("[")]
    LBracket,
    #[token("]")]
    RBracket,
    #[token("{")]
    LBrace,
    #[token("}")]
    RBrace,
    #[token(",")]
    Comma,
    #[token(";")]
    Semi,
    #[token(".")]
    Dot,
    #[token("..")]
    DotDot,
    #[token("=")]
    Assign,
    #[token("==")]
    EqEq,
    #[token("!=")]
    NotEq,
    #[token("<>")]
    LtGt,
    #[token("<")]
    Lt,
    #[token("<=")]
    LtEq,
    #[token(">")]
    Gt,
    #[token(">=")]
    GtEq,
    #[token("=~")]
    EqTilde,
    #[token("!~")]
    NotTilde,
    #[token("+")]
    Plus,
    #[token("-")]
    Minus,
    #[token("*")]
    Star,
    #[token("/")]
    Slash,
    #[token("%")]
    Percent,
    #[token(":")]
    Colon,
    #[token("=>")]
    FatArrow,
    #[token("<|")]
    LtPipe,
}

pub type Spanned = (usize, Tok, usize);

/// Lexes a whole request into tokens, applying all passes.
pub fn tokenize(source: &str) -> Result<Vec<Spanned>, ParseError> {
    let raw = RawLexer { src: source }.run()?;
    let is_command = matches!(raw.first(), Some((_, RawTok::Punct(Tok::Dot), _)));
    let merged = merge_words(source, raw, is_command);
    let toks = classify(merged, is_command);
    let toks = mark_params(toks);
    check_depth(source, &toks)?;
    Ok(toks)
}

/// A token after pass 1: words are still words.
#[derive(Debug, Clone)]
enum RawTok {
    Word(String),
    Punct(Tok),
    Lit(Tok),
}

struct RawLexer<'a> {
    src: &'a str,
}

fn err(
    kind: ParseErrorKind,
    msg: impl Into<String>,
    start: usize,
    end: usize,
    src: &str,
) -> ParseError {
    ParseError::new(kind, msg, Span::new(start, end), src)
}

impl<'a> RawLexer<'a> {
    fn run(&self) -> Result<Vec<(usize, RawTok, usize)>, ParseError> {
        let src = self.src;
        let mut out = Vec::with_capacity(src.len() / 4 + 8);
        let mut base = 0usize;
        'outer: loop {
            let rest = src.get(base..).unwrap_or("");
            let mut lex = Raw::lexer(rest);
            while let Some(res) = lex.next() {
                let r = lex.span();
                let (s, e) = (base + r.start, base + r.end);
                let text = lex.slice();
                let raw = match res {
                    Ok(raw) => raw,
                    Err(()) => return Err(self.invalid_token(s)),
                };
                let tok = match raw {
                    Raw::Word => {
                        if let Some(end) = self.try_typed_literal(text, e, &mut out, s)? {
                            base = end;
                            continue 'outer;
                        }
                        RawTok::Word(text.to_string())
                    }
                    Raw::DollarWord => RawTok::Word(text.to_string()),
                    Raw::DollarLeft => RawTok::Punct(Tok::DollarLeft),
                    Raw::DollarRight => RawTok::Punct(Tok::DollarRight),
                    Raw::Int => RawTok::Lit(Tok::Long(parse_long(text, 10).ok_or_else(|| {
                        err(
                            ParseErrorKind::InvalidLiteral,
                            "integer literal out of range",
                            s,
                            e,
                            src,
                        )
                    })?)),
                    Raw::Hex => {
                        RawTok::Lit(Tok::Long(parse_long(&text[2..], 16).ok_or_else(|| {
                            err(
                                ParseErrorKind::InvalidLiteral,
                                "integer literal out of range",
                                s,
                                e,
                                src,
                            )
                        })?))
                    }
                    Raw::Real => RawTok::Lit(Tok::Real(text.parse::<f64>().map_err(|_| {
                        err(
                            ParseErrorKind::InvalidLiteral,
                            "invalid real literal",
                            s,
                            e,
                            src,
                        )
                    })?)),
                    Raw::Timespan => RawTok::Lit(Tok::Timespan(
                        parse_timespan_unit_literal(text).ok_or_else(|| {
                            err(
                                ParseErrorKind::InvalidLiteral,
                                "timespan literal out of range",
                                s,
                                e,
                                src,
                            )
                        })?,
                    )),
                    Raw::Str => RawTok::Lit(Tok::Str(StrLit {
                        value: decode_escaped(&text[1..text.len() - 1], s + 1, src)?,
                        obfuscated: false,
                    })),
                    Raw::VerbatimStr => RawTok::Lit(Tok::Str(StrLit {
                        value: decode_verbatim(&text[1..]),
                        obfuscated: false,
                    })),
                    Raw::HStr => RawTok::Lit(Tok::Str(StrLit {
                        value: decode_escaped(&text[2..text.len() - 1], s + 2, src)?,
                        obfuscated: true,
                    })),
                    Raw::HVerbatimStr => RawTok::Lit(Tok::Str(StrLit {
                        value: decode_verbatim(&text[2..]),
                        obfuscated: true,
                    })),
                    Raw::TripleBacktick | Raw::TripleTilde => {
                        let fence = text;
                        let after = src.get(e..).unwrap_or("");
                        match after.find(fence) {
                            Some(i) => {
                                let value = after[..i].to_string();
                                let end = e + i + fence.len();
                                out.push((
                                    s,
                                    RawTok::Lit(Tok::Str(StrLit {
                                        value,
                                        obfuscated: false,
                                    })),
                                    end,
                                ));
                                base = end;
                                continue 'outer;
                            }
                            None => {
                                return Err(err(
                                    ParseErrorKind::InvalidToken,
                                    format!(
                                        "unterminated multi-line string literal (missing closing {fence})"
                                    ),
                                    s,
                                    e,
                                    src,
                                ));
                            }
                        }
                    }
                    Raw::BangWord => RawTok::Punct(bang_word(&text[1..])),
                    Raw::InCi => RawTok::Punct(Tok::Kw(Kw::InCi)),
                    Raw::NotInCi => RawTok::Punct(Tok::Kw(Kw::NotInCi)),
                    Raw::Pipe => RawTok::Punct(Tok::Pipe),
                    Raw::LParen => RawTok::Punct(Tok::LParen),
                    Raw::RParen => RawTok::Punct(Tok::RParen),
                    Raw::LBracket => RawTok::Punct(Tok::LBracket),
                    Raw::RBracket => RawTok::Punct(Tok::RBracket),
                    Raw::LBrace => RawTok::Punct(Tok::LBrace),
                    Raw::RBrace => RawTok::Punct(Tok::RBrace),
                    Raw::Comma => RawTok::Punct(Tok::Comma),
                    Raw::Semi => RawTok::Punct(Tok::Semi),
                    Raw::Dot => RawTok::Punct(Tok::Dot),
                    Raw::DotDot => RawTok::Punct(Tok::DotDot),
                    Raw::Assign => RawTok::Punct(Tok::Assign),
                    Raw::EqEq => RawTok::Punct(Tok::EqEq),
                    Raw::NotEq => RawTok::Punct(Tok::NotEq),
                    Raw::LtGt => RawTok::Punct(Tok::LtGt),
                    Raw::Lt => RawTok::Punct(Tok::Lt),
                    Raw::LtEq => RawTok::Punct(Tok::LtEq),
                    Raw::Gt => RawTok::Punct(Tok::Gt),
                    Raw::GtEq => RawTok::Punct(Tok::GtEq),
                    Raw::EqTilde => RawTok::Punct(Tok::EqTilde),
                    Raw::NotTilde => RawTok::Punct(Tok::NotTilde),
                    Raw::Plus => RawTok::Punct(Tok::Plus),
                    Raw::Minus => RawTok::Punct(Tok::Minus),
                    Raw::Star => RawTok::Punct(Tok::Star),
                    Raw::Slash => RawTok::Punct(Tok::Slash),
                    Raw::Percent => RawTok::Punct(Tok::Percent),
                    Raw::Colon => RawTok::Punct(Tok::Colon),
                    Raw::FatArrow => RawTok::Punct(Tok::FatArrow),
                    Raw::LtPipe => {
                        out.push((s, RawTok::Punct(Tok::LtPipe), e));
                        // `.ingest inline ... <|` : the rest of the request is data, verbatim,
                        // except the spaces and line breaks before its first character (Kusto's
                        // rule: `<| 1,a` and `<|` then `1,a` on the next line are one record
                        // `1,a`, not `" 1"` or an empty first record).
                        if is_ingest_inline(&out) {
                            let rest = src.get(e..).unwrap_or("");
                            let data = rest.trim_start_matches([' ', '\t', '\r', '\n']);
                            out.push((
                                src.len() - data.len(),
                                RawTok::Lit(Tok::RawText(data.to_string())),
                                src.len(),
                            ));
                            return Ok(out);
                        }
                        continue;
                    }
                };
                out.push((s, tok, e));
            }
            break;
        }
        Ok(out)
    }

    fn invalid_token(&self, start: usize) -> ParseError {
        let src = self.src;
        let rest = src.get(start..).unwrap_or("");
        let c = rest.chars().next();
        let end = start + c.map(char::len_utf8).unwrap_or(0);
        let msg = match c {
            Some('\'') | Some('"') => "unterminated string literal".to_string(),
            Some('@') if rest.len() > 1 => "unterminated verbatim string literal".to_string(),
            Some(c) => format!("unexpected character {c:?}"),
            None => "unexpected end of text".to_string(),
        };
        let end = if msg.starts_with("unterminated") {
            rest.find('\n').map(|i| start + i).unwrap_or(src.len())
        } else {
            end
        };
        err(
            ParseErrorKind::InvalidToken,
            msg,
            start,
            end.max(start),
            src,
        )
    }

    /// If the word at `[start, word_end)` starts a typed literal (`datetime(...)` etc.), pushes
    /// the literal token and returns the offset after it.
    fn try_typed_literal(
        &self,
        word: &str,
        word_end: usize,
        out: &mut Vec<(usize, RawTok, usize)>,
        start: usize,
    ) -> Result<Option<usize>, ParseError> {
        if !LITERAL_WORDS.contains(&word) {
            return Ok(None);
        }
        let src = self.src;
        let after = src.get(word_end..).unwrap_or("");
        let ws = after.len() - after.trim_start().len();
        if !after[ws..].starts_with('(') {
            return Ok(None);
        }
        let open = word_end + ws;
        if word == "dynamic" {
            let mut p = DynParser {
                src,
                pos: open + 1,
                depth: 0,
            };
            let value = p.value()?;
            p.skip_ws();
            if src.get(p.pos..).is_some_and(|r| r.starts_with(')')) {
                let end = p.pos + 1;
                out.push((
                    start,
                    RawTok::Lit(Tok::TypedLit(LiteralKind::Dynamic(value))),
                    end,
                ));
                return Ok(Some(end));
            }
            return Err(err(
                ParseErrorKind::InvalidLiteral,
                "expected ')' to close the dynamic literal",
                p.pos,
                p.pos,
                src,
            ));
        }
        let Some(close_rel) = src[open..].find(')') else {
            return Err(err(
                ParseErrorKind::InvalidLiteral,
                format!("unterminated {word} literal (missing ')')"),
                start,
                src.len(),
                src,
            ));
        };
        let close = open + close_rel;
        let inner = src[open + 1..close].trim();
        let end = close + 1;
        let kind = match typed_literal(word, inner) {
            TypedResult::Literal(k) => k,
            TypedResult::NotALiteral => return Ok(None),
            TypedResult::Invalid(msg) => {
                return Err(err(ParseErrorKind::InvalidLiteral, msg, start, end, src));
            }
        };
        out.push((start, RawTok::Lit(Tok::TypedLit(kind)), end));
        Ok(Some(end))
    }
}

fn is_ingest_inline(toks: &[(usize, RawTok, usize)]) -> bool {
    matches!(
        toks,
        [(_, RawTok::Punct(Tok::Dot), _), (_, RawTok::Word(a), _), (_, RawTok::Word(b), _), ..]
            if a == "ingest" && b == "inline"
    )
}

enum TypedResult {
    Literal(LiteralKind),
    NotALiteral,
    Invalid(String),
}

fn typed_literal(word: &str, inner: &str) -> TypedResult {
    use TypedResult::*;
    let is_null = inner == "null";
    match word {
        "datetime" | "date" => {
            if is_null {
                Literal(LiteralKind::TypedNull("datetime".into()))
            } else if inner.is_empty() {
                Invalid("empty datetime literal".into())
            } else {
                Literal(LiteralKind::Datetime(inner.to_string()))
            }
        }
        "guid" => {
            if is_null {
                Literal(LiteralKind::TypedNull("guid".into()))
            } else if inner.is_empty() {
                Invalid("empty guid literal".into())
            } else {
                Literal(LiteralKind::Guid(inner.to_string()))
            }
        }
        "timespan" | "time" => {
            if is_null {
                Literal(LiteralKind::TypedNull("timespan".into()))
            } else {
                match parse_timespan_text(inner) {
                    Some(t) => Literal(LiteralKind::Timespan(t)),
                    None => Invalid(format!("invalid timespan literal '{}'", clip(inner))),
                }
            }
        }
        "long" | "int" => {
            if is_null {
                return Literal(LiteralKind::TypedNull(word.into()));
            }
            let Some(v) = parse_signed_integer(inner) else {
                return NotALiteral;
            };
            if word == "long" {
                match i64::try_from(v) {
                    Ok(v) => Literal(LiteralKind::Long(v)),
                    Err(_) => Invalid("long literal out of range".into()),
                }
            } else {
                match i32::try_from(v) {
                    Ok(v) => Literal(LiteralKind::Int(v)),
                    Err(_) => Invalid("int literal out of range".into()),
                }
            }
        }
        "real" | "double" => {
            if is_null {
                return Literal(LiteralKind::TypedNull("real".into()));
            }
            match parse_signed_real(inner) {
                Some(v) => Literal(LiteralKind::Real(v)),
                None => NotALiteral,
            }
        }
        "decimal" => {
            if is_null {
                return Literal(LiteralKind::TypedNull("decimal".into()));
            }
            if parse_signed_real(inner).is_some()
                && !inner.contains(|c: char| c.is_ascii_alphabetic() && c != 'e' && c != 'E')
            {
                Literal(LiteralKind::Decimal(inner.to_string()))
            } else {
                NotALiteral
            }
        }
        "bool" => match inner.to_ascii_lowercase().as_str() {
            "null" => Literal(LiteralKind::TypedNull("bool".into())),
            "true" => Literal(LiteralKind::Bool(true)),
            "false" => Literal(LiteralKind::Bool(false)),
            _ => NotALiteral,
        },
        _ => NotALiteral,
    }
}

fn parse_long(digits: &str, radix: u32) -> Option<i64> {
    i64::from_str_radix(digits, radix).ok()
}

/// `[+-]digits` or `[+-]0xHEX` as i128 (None if not of that form).
fn parse_signed_integer(s: &str) -> Option<i128> {
    let (neg, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let v = if let Some(hex) = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
        if hex.is_empty() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) || hex.len() > 30 {
            return None;
        }
        i128::from_str_radix(hex, 16).ok()?
    } else {
        if body.is_empty() || !body.bytes().all(|b| b.is_ascii_digit()) || body.len() > 30 {
            return None;
        }
        body.parse::<i128>().ok()?
    };
    Some(if neg { -v } else { v })
}

/// A real number with optional sign, or `nan`, `inf`, `+inf`, `-inf`.
fn parse_signed_real(s: &str) -> Option<f64> {
    let (neg, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let v = match body {
        "nan" => f64::NAN,
        "inf" => f64::INFINITY,
        _ => {
            let b = body.as_bytes();
            if b.is_empty() || !(b[0].is_ascii_digit() || b[0] == b'.') {
                return None;
            }
            if !body
                .bytes()
                .all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'+' | b'-'))
            {
                return None;
            }
            body.parse::<f64>().ok()?
        }
    };
    Some(if neg { -v } else { v })
}

fn bang_word(w: &str) -> Tok {
    use crate::ast::BinaryOp::*;
    match w {
        "in" => Tok::Kw(Kw::NotIn),
        "between" => Tok::Kw(Kw::NotBetween),
        "has" => Tok::StrOp(NotHas),
        "has_cs" => Tok::StrOp(NotHasCs),
        "hasprefix" => Tok::StrOp(NotHasPrefix),
        "hasprefix_cs" => Tok::StrOp(NotHasPrefixCs),
        "hassuffix" => Tok::StrOp(NotHasSuffix),
        "hassuffix_cs" => Tok::StrOp(NotHasSuffixCs),
        "contains" => Tok::StrOp(NotContains),
        "contains_cs" => Tok::StrOp(NotContainsCs),
        "startswith" => Tok::StrOp(NotStartsWith),
        "startswith_cs" => Tok::StrOp(NotStartsWithCs),
        "endswith" => Tok::StrOp(NotEndsWith),
        _ => Tok::StrOp(NotEndsWithCs),
    }
}

fn string_operator_word(w: &str) -> Option<crate::ast::BinaryOp> {
    use crate::ast::BinaryOp::*;
    Some(match w {
        "has" => Has,
        "has_cs" => HasCs,
        "hasprefix" => HasPrefix,
        "hasprefix_cs" => HasPrefixCs,
        "hassuffix" => HasSuffix,
        "hassuffix_cs" => HasSuffixCs,
        "contains" => Contains,
        "contains_cs" => ContainsCs,
        "startswith" => StartsWith,
        "startswith_cs" => StartsWithCs,
        "endswith" => EndsWith,
        "endswith_cs" => EndsWithCs,
        _ => return Option::None,
    })
}

/// Decodes the inside of a `'...'` / `"..."` literal. `at` is the byte offset of `body`.
fn decode_escaped(body: &str, at: usize, src: &str) -> Result<String, ParseError> {
    let mut out = String::with_capacity(body.len());
    let mut it = body.char_indices().peekable();
    while let Some((i, c)) = it.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let bad = |len: usize, msg: &str| {
            err(
                ParseErrorKind::InvalidLiteral,
                msg,
                at + i,
                at + i + len,
                src,
            )
        };
        let Some((_, e)) = it.next() else {
            return Err(bad(1, "unterminated escape sequence"));
        };
        match e {
            '\\' => out.push('\\'),
            '\'' => out.push('\''),
            '"' => out.push('"'),
            'n' => out.push('\n'),
            't' => out.push('\t'),
            'r' => out.push('\r'),
            'a' => out.push('\u{7}'),
            'b' => out.push('\u{8}'),
            'f' => out.push('\u{c}'),
            'v' => out.push('\u{b}'),
            'x' => {
                let mut code = 0u32;
                for _ in 0..2 {
                    match it.next() {
                        Some((_, h)) if h.is_ascii_hexdigit() => {
                            code = code * 16 + h.to_digit(16).unwrap_or(0)
                        }
                        _ => return Err(bad(2, "invalid hexadecimal escape sequence (\\xHH)")),
                    }
                }
                match char::from_u32(code) {
                    Some(ch) => out.push(ch),
                    None => return Err(bad(4, "invalid hexadecimal escape sequence")),
                }
            }
            'u' | 'U' => {
                let n = if e == 'u' { 4 } else { 8 };
                let mut code = 0u32;
                for _ in 0..n {
                    match it.next() {
                        Some((_, h)) if h.is_ascii_hexdigit() => {
                            code = code * 16 + h.to_digit(16).unwrap_or(0)
                        }
                        _ => return Err(bad(2, "invalid unicode escape sequence")),
                    }
                }
                match char::from_u32(code) {
                    Some(ch) => out.push(ch),
                    None => {
                        return Err(bad(2 + n, "invalid unicode code point in escape sequence"));
                    }
                }
            }
            '0'..='7' => {
                let mut code = e.to_digit(8).unwrap_or(0);
                for _ in 0..2 {
                    match it.peek() {
                        Some((_, d)) if d.is_digit(8) => {
                            code = code * 8 + d.to_digit(8).unwrap_or(0);
                            it.next();
                        }
                        _ => break,
                    }
                }
                match char::from_u32(code) {
                    Some(ch) => out.push(ch),
                    None => return Err(bad(2, "invalid octal escape sequence")),
                }
            }
            other => {
                return Err(bad(
                    1 + other.len_utf8(),
                    &format!(
                        "invalid escape sequence '\\{other}' (use a verbatim string @'...' for backslashes)"
                    ),
                ));
            }
        }
    }
    Ok(out)
}

/// Decodes `'...'` / `"..."` of a verbatim literal (quote doubled inside).
fn decode_verbatim(quoted: &str) -> String {
    let q = &quoted[..1];
    let body = &quoted[1..quoted.len() - 1];
    body.replace(&format!("{q}{q}"), q)
}

// ---------------------------------------------------------------------------------------------
// Timespans
// ---------------------------------------------------------------------------------------------

/// (numerator, denominator) of a unit in ticks.
fn unit_ticks(unit: &str) -> Option<(i128, i128)> {
    let day = i128::from(ticks::DAY);
    Some(match unit {
        "d" | "day" | "days" => (day, 1),
        "h" | "hr" | "hrs" | "hour" | "hours" => (i128::from(ticks::HOUR), 1),
        "m" | "min" | "minute" | "minutes" => (i128::from(ticks::MINUTE), 1),
        "s" | "sec" | "second" | "seconds" => (i128::from(ticks::SECOND), 1),
        "ms" | "milli" | "millis" | "millisec" | "millisecond" | "milliseconds" => {
            (i128::from(ticks::MILLISECOND), 1)
        }
        "micro" | "micros" | "microsec" | "microsecond" | "microseconds" => {
            (i128::from(ticks::MICROSECOND), 1)
        }
        "nano" | "nanos" | "nanosec" | "nanosecond" | "nanoseconds" => (1, 100),
        "tick" | "ticks" => (1, 1),
        _ => return Option::None,
    })
}

/// `digits[.digits]` times `num/den` ticks, truncated; None on overflow or bad digits.
fn scaled(number: &str, num: i128, den: i128) -> Option<i128> {
    let (int_part, frac_part) = match number.split_once('.') {
        Some((a, b)) => (a, b),
        None => (number, ""),
    };
    if int_part.is_empty() && frac_part.is_empty() {
        return None;
    }
    if !int_part.bytes().all(|b| b.is_ascii_digit())
        || !frac_part.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    if int_part.len() > 25 {
        return None;
    }
    // Only the first 9 fractional digits matter at tick resolution.
    let frac = &frac_part[..frac_part.len().min(9)];
    let scale = 10i128.checked_pow(u32::try_from(frac.len()).ok()?)?;
    let i: i128 = if int_part.is_empty() {
        0
    } else {
        int_part.parse().ok()?
    };
    let f: i128 = if frac.is_empty() {
        0
    } else {
        frac.parse().ok()?
    };
    let total = i.checked_mul(scale)?.checked_add(f)?;
    Some(total.checked_mul(num)? / (scale.checked_mul(den)?))
}

fn to_i64_ticks(v: i128) -> Option<i64> {
    i64::try_from(v).ok()
}

/// `1d`, `1.5h`, `100ms`...
fn parse_timespan_unit_literal(text: &str) -> Option<i64> {
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (num, unit) = text.split_at(split);
    let (n, d) = unit_ticks(unit)?;
    to_i64_ticks(scaled(num, n, d)?)
}

/// The inside of `timespan(...)` / `time(...)`: `1d`, `15 seconds`, `2` (days),
/// `1.02:03:04.5`, `12:34:56`, with an optional leading `-`.
pub(crate) fn parse_timespan_text(text: &str) -> Option<i64> {
    let t = text.trim();
    let (neg, body) = match t.as_bytes().first() {
        Some(b'-') => (true, t[1..].trim_start()),
        Some(b'+') => (false, t[1..].trim_start()),
        _ => (false, t),
    };
    let v: i128 = if body.contains(':') {
        parse_clock(body)?
    } else {
        let split = body
            .find(|c: char| c.is_ascii_alphabetic())
            .unwrap_or(body.len());
        let (num, unit) = body.split_at(split);
        let num = num.trim_end();
        let (n, d) = if unit.is_empty() {
            (i128::from(ticks::DAY), 1)
        } else {
            unit_ticks(unit)?
        };
        scaled(num, n, d)?
    };
    to_i64_ticks(if neg { -v } else { v })
}

/// `[d.]hh:mm[:ss[.fffffff]]`
fn parse_clock(body: &str) -> Option<i128> {
    let parts: Vec<&str> = body.split(':').collect();
    if parts.len() < 2 || parts.len() > 3 {
        return None;
    }
    let (days, hours) = match parts[0].split_once('.') {
        Some((d, h)) => (d, h),
        None => ("0", parts[0]),
    };
    let int = |s: &str| -> Option<i128> {
        if s.is_empty() || s.len() > 12 || !s.bytes().all(|b| b.is_ascii_digit()) {
            None
        } else {
            s.parse().ok()
        }
    };
    let d = int(days)?;
    let h = int(hours)?;
    let m = int(parts[1])?;
    let s = match parts.get(2) {
        Some(sec) => scaled(sec, i128::from(ticks::SECOND), 1)?,
        None => 0,
    };
    d.checked_mul(i128::from(ticks::DAY))?
        .checked_add(h.checked_mul(i128::from(ticks::HOUR))?)?
        .checked_add(m.checked_mul(i128::from(ticks::MINUTE))?)?
        .checked_add(s)
}

// ---------------------------------------------------------------------------------------------
// dynamic(...) values
// ---------------------------------------------------------------------------------------------

struct DynParser<'a> {
    src: &'a str,
    pos: usize,
    depth: usize,
}

impl DynParser<'_> {
    fn rest(&self) -> &str {
        self.src.get(self.pos..).unwrap_or("")
    }

    fn skip_ws(&mut self) {
        let r = self.rest();
        self.pos += r.len() - r.trim_start().len();
    }

    fn error(&self, msg: impl Into<String>) -> ParseError {
        let end = self.pos + self.rest().chars().next().map(char::len_utf8).unwrap_or(0);
        err(ParseErrorKind::InvalidLiteral, msg, self.pos, end, self.src)
    }

    fn eat(&mut self, c: char) -> bool {
        self.skip_ws();
        if self.rest().starts_with(c) {
            self.pos += c.len_utf8();
            true
        } else {
            false
        }
    }

    /// Lexes and consumes one raw token at the current position.
    fn raw_token(&mut self) -> Result<(Raw, String, usize, usize), ParseError> {
        self.skip_ws();
        let rest = self.rest();
        let mut lex = Raw::lexer(rest);
        match lex.next() {
            Some(Ok(raw)) => {
                let r = lex.span();
                let (s, e) = (self.pos + r.start, self.pos + r.end);
                let text = self.src.get(s..e).unwrap_or("").to_string();
                self.pos = e;
                Ok((raw, text, s, e))
            }
            _ => Err(self.error("invalid value in dynamic literal")),
        }
    }

    fn value(&mut self) -> Result<DynValue, ParseError> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return Err(err(
                ParseErrorKind::TooComplex,
                format!("dynamic literal nested deeper than {MAX_NESTING} levels"),
                self.pos,
                self.pos,
                self.src,
            ));
        }
        let v = self.value_inner();
        self.depth -= 1;
        v
    }

    fn value_inner(&mut self) -> Result<DynValue, ParseError> {
        let src = self.src;
        if self.eat('[') {
            let mut items = Vec::new();
            if self.eat(']') {
                return Ok(DynValue::Array(items));
            }
            loop {
                items.push(self.value()?);
                if self.eat(',') {
                    continue;
                }
                if self.eat(']') {
                    return Ok(DynValue::Array(items));
                }
                return Err(self.error("expected ',' or ']' in dynamic array"));
            }
        }
        if self.eat('{') {
            let mut entries = Vec::new();
            if self.eat('}') {
                return Ok(DynValue::Object(entries));
            }
            loop {
                let key = match self.raw_token()? {
                    (Raw::Str, text, s, _) => decode_escaped(&text[1..text.len() - 1], s + 1, src)?,
                    (Raw::VerbatimStr, text, ..) => decode_verbatim(&text[1..]),
                    (_, _, s, e) => {
                        return Err(err(
                            ParseErrorKind::InvalidLiteral,
                            "expected a string property name in dynamic object",
                            s,
                            e,
                            src,
                        ));
                    }
                };
                if !self.eat(':') {
                    return Err(self.error("expected ':' after property name in dynamic object"));
                }
                let v = self.value()?;
                entries.push((key, v));
                if self.eat(',') {
                    continue;
                }
                if self.eat('}') {
                    return Ok(DynValue::Object(entries));
                }
                return Err(self.error("expected ',' or '}' in dynamic object"));
            }
        }
        let neg = self.eat('-');
        let (raw, text, s, e) = self.raw_token()?;
        let bad = |msg: &str| err(ParseErrorKind::InvalidLiteral, msg, s, e, src);
        Ok(match raw {
            Raw::Int | Raw::Hex => {
                let mag = if raw == Raw::Hex {
                    i128::from_str_radix(&text[2..], 16).ok()
                } else {
                    text.parse::<i128>().ok()
                };
                let v = mag
                    .map(|m| if neg { -m } else { m })
                    .and_then(|m| i64::try_from(m).ok());
                DynValue::Long(v.ok_or_else(|| bad("integer out of range"))?)
            }
            Raw::Real => {
                let v: f64 = text.parse().map_err(|_| bad("invalid real number"))?;
                DynValue::Real(if neg { -v } else { v })
            }
            Raw::Timespan => {
                let t = parse_timespan_unit_literal(&text)
                    .ok_or_else(|| bad("timespan out of range"))?;
                DynValue::Timespan(if neg { -t } else { t })
            }
            _ if neg => return Err(bad("expected a number after '-'")),
            Raw::Str => DynValue::String(decode_escaped(&text[1..text.len() - 1], s + 1, src)?),
            Raw::HStr => DynValue::String(decode_escaped(&text[2..text.len() - 1], s + 2, src)?),
            Raw::VerbatimStr => DynValue::String(decode_verbatim(&text[1..])),
            Raw::HVerbatimStr => DynValue::String(decode_verbatim(&text[2..])),
            Raw::Word => match text.as_str() {
                "null" => DynValue::Null,
                "true" => DynValue::Bool(true),
                "false" => DynValue::Bool(false),
                // A dynamic literal nested in another (`dynamic({"a": dynamic([1, 2])})`) is
                // its value.
                "dynamic" => {
                    if !self.eat('(') {
                        return Err(self.error("expected '(' after 'dynamic' in dynamic literal"));
                    }
                    let v = self.value()?;
                    if !self.eat(')') {
                        return Err(self.error("expected ')' closing the nested dynamic literal"));
                    }
                    v
                }
                w if LITERAL_WORDS.contains(&w) && w != "dynamic" => {
                    let mut tmp = Vec::new();
                    let lexer = RawLexer { src };
                    match lexer.try_typed_literal(w, e, &mut tmp, s)? {
                        Some(end) => {
                            self.pos = end;
                            match tmp.pop() {
                                Some((_, RawTok::Lit(Tok::TypedLit(k)), _)) => literal_to_dyn(k),
                                _ => DynValue::Null,
                            }
                        }
                        None => return Err(bad("invalid value in dynamic literal")),
                    }
                }
                _ => {
                    return Err(bad(&format!(
                        "unexpected '{}' in dynamic literal",
                        clip(&text)
                    )));
                }
            },
            _ => return Err(bad("invalid value in dynamic literal")),
        })
    }
}

fn literal_to_dyn(k: LiteralKind) -> DynValue {
    match k {
        LiteralKind::Long(v) => DynValue::Long(v),
        LiteralKind::Int(v) => DynValue::Long(i64::from(v)),
        LiteralKind::Real(v) => DynValue::Real(v),
        LiteralKind::Decimal(s) => DynValue::Real(s.parse().unwrap_or(f64::NAN)),
        LiteralKind::Bool(b) => DynValue::Bool(b),
        LiteralKind::String(s) | LiteralKind::ObfuscatedString(s) => DynValue::String(s),
        LiteralKind::Datetime(s) => DynValue::Datetime(s),
        LiteralKind::Timespan(t) => DynValue::Timespan(t),
        LiteralKind::Guid(s) => DynValue::Guid(s),
        LiteralKind::Dynamic(v) => v,
        LiteralKind::TypedNull(_) => DynValue::Null,
    }
}

// ---------------------------------------------------------------------------------------------
// Pass 2: hyphenated words
// ---------------------------------------------------------------------------------------------

/// Whether a GUID (`8-4-4-4-12` hex digits) starts at `at` in `src`, not followed by a word
/// character.
fn guid_at(src: &str, at: usize) -> bool {
    let b = src.as_bytes();
    if b.len() < at + 36 {
        return false;
    }
    let ok = b[at..at + 36].iter().enumerate().all(|(k, c)| match k {
        8 | 13 | 18 | 23 => *c == b'-',
        _ => c.is_ascii_hexdigit(),
    });
    ok && !b.get(at + 36).is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
        && !(at > 0 && (b[at - 1].is_ascii_alphanumeric() || b[at - 1] == b'_'))
}

fn merge_words(
    _src: &str,
    mut raw: Vec<(usize, RawTok, usize)>,
    is_command: bool,
) -> Vec<(usize, RawTok, usize)> {
    let mut out: Vec<(usize, RawTok, usize)> = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        // An extent id written as a bare GUID (`.drop extent 609ad1e2-5b3b-...`): one word.
        let start = raw[i].0;
        if is_command && guid_at(_src, start) {
            let end = start + 36;
            let mut j = i;
            while j < raw.len() && raw[j].2 <= end && raw[j].0 >= start {
                j += 1;
            }
            if j > i && raw[j - 1].2 == end {
                out.push((start, RawTok::Word(_src[start..end].to_string()), end));
                i = j;
                continue;
            }
        }
        // Only a word directly followed by `-` can start a hyphenated keyword.
        let hyphen_follows =
            matches!(raw.get(i + 1), Some((ms, RawTok::Punct(Tok::Minus), _)) if *ms == raw[i].2);
        if let (s, RawTok::Word(w), e) = &raw[i]
            && hyphen_follows
        {
            // Try word-word-word, then word-word (adjacent, no spaces).
            let mut merged = None;
            for parts in [3usize, 2] {
                let n = parts * 2 - 1;
                if i + n > raw.len() {
                    continue;
                }
                let mut text = w.clone();
                let mut end = *e;
                let mut ok = true;
                for k in 1..parts {
                    let (ms, m, me) = &raw[i + 2 * k - 1];
                    let (ws, w2, we) = &raw[i + 2 * k];
                    match (m, w2) {
                        (RawTok::Punct(Tok::Minus), RawTok::Word(w2))
                            if *ms == end && *ws == *me =>
                        {
                            text.push('-');
                            text.push_str(w2);
                            end = *we;
                        }
                        _ => {
                            ok = false;
                            break;
                        }
                    }
                }
                if ok
                    && (HYPHENATED.contains(&text.as_str())
                        || UNSUPPORTED.contains(&text.as_str())
                        || (is_command && HYPHENATED_COMMAND.contains(&text.as_str())))
                {
                    merged = Some((text, end, n));
                    break;
                }
            }
            if let Some((text, end, n)) = merged {
                out.push((*s, RawTok::Word(text), end));
                i += n;
                continue;
            }
        }
        out.push(std::mem::replace(
            &mut raw[i],
            (0, RawTok::Punct(Tok::Comma), 0),
        ));
        i += 1;
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Pass 3: keywords, string concatenation, raw ingest data
// ---------------------------------------------------------------------------------------------

fn classify(raw: Vec<(usize, RawTok, usize)>, is_command: bool) -> Vec<Spanned> {
    let mut out: Vec<Spanned> = Vec::with_capacity(raw.len());
    // In a command, words are command keywords until the query part starts.
    let mut command_words = is_command;
    for (s, t, e) in raw {
        let tok = match t {
            RawTok::Word(w) => {
                if UNSUPPORTED.contains(&w.as_str()) {
                    Tok::Unsupported(w)
                } else if let Some(op) = string_operator_word(&w) {
                    Tok::StrOp(op)
                } else if command_words {
                    match command_keyword(&w) {
                        Some(kw) => Tok::Kw(kw),
                        None => Tok::Ident(w),
                    }
                } else {
                    match query_keyword(&w) {
                        Some(kw) => Tok::Kw(kw),
                        None => Tok::Ident(w),
                    }
                }
            }
            RawTok::Punct(p) | RawTok::Lit(p) => p,
        };
        // `.drop extents <| .show table T extents`: a command after `<|` is a command.
        if is_command && matches!(tok, Tok::Dot) && matches!(out.last(), Some((_, Tok::LtPipe, _))) {
            command_words = true;
        }
        if command_words && matches!(tok, Tok::LtPipe | Tok::Pipe | Tok::LBrace) {
            command_words = false;
        }
        // Adjacent string literals concatenate: 'a' "b" == "ab" (in queries; a command's own
        // arguments are single literals).
        if !command_words
            && let Tok::Str(next) = &tok
            && let Some((_, Tok::Str(prev), pe)) = out.last_mut()
        {
            prev.value.push_str(&next.value);
            prev.obfuscated |= next.obfuscated;
            *pe = e;
            continue;
        }
        out.push((s, tok, e));
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Pass 4: operator parameters
// ---------------------------------------------------------------------------------------------

fn mark_params(mut toks: Vec<Spanned>) -> Vec<Spanned> {
    let mut out: Vec<Spanned> = Vec::with_capacity(toks.len());
    let mut i = 0;
    // The operator whose parameters may follow, and whether any name is allowed (`render`).
    let mut mode: Option<Kw> = None;
    let mut render_pending = false;
    let n = toks.len();
    while i < n {
        let (s, tok, e) = std::mem::replace(&mut toks[i], (0, Tok::Comma, 0));
        if render_pending {
            // The chart type after `render`; legacy `name=value` properties may follow.
            render_pending = false;
            mode = Some(Kw::Render);
            out.push((s, tok, e));
            i += 1;
            continue;
        }
        if let Some(op) = mode {
            let is_assign = |j: usize| matches!(toks.get(j), Some((_, Tok::Assign, _)));
            // hint.name =
            if let Tok::Ident(w) = &tok
                && w == "hint"
                && let (Some((ds, Tok::Dot, de)), Some((ns, name_tok, ne))) =
                    (toks.get(i + 1), toks.get(i + 2))
                && *de == *ns
                && e == *ds
                && is_assign(i + 3)
                && let Some(name) = token_word(name_tok)
                && HINT_NAMES.contains(&name.as_str())
            {
                let full = format!("hint.{name}");
                let ne = *ne;
                out.push((s, Tok::ParamName(full), ne));
                i += 3;
                // `=` and the value pass through unchanged; stay in parameter mode.
                for _ in 0..2 {
                    if i < n {
                        let t = std::mem::replace(&mut toks[i], (0, Tok::Comma, 0));
                        out.push(t);
                        i += 1;
                    }
                }
                continue;
            }
            let word = token_word(&tok);
            if let Some(w) = word {
                let allowed = op == Kw::Render || is_param_name_of(op, &w);
                if allowed && is_assign(i + 1) {
                    out.push((s, Tok::ParamName(w), e));
                    i += 1;
                    // `=` and the value pass through unchanged; stay in parameter mode.
                    for _ in 0..2 {
                        if i < n {
                            let t = std::mem::replace(&mut toks[i], (0, Tok::Comma, 0));
                            out.push(t);
                            i += 1;
                        }
                    }
                    continue;
                }
            }
            mode = None;
        }
        if let Tok::Kw(kw) = &tok {
            if *kw == Kw::Render {
                render_pending = true;
            } else if param_names(*kw).is_some() {
                mode = Some(*kw);
            }
        }
        out.push((s, tok, e));
        i += 1;
    }
    out
}

/// The word a token was written as, for identifiers and keywords.
fn token_word(t: &Tok) -> Option<String> {
    match t {
        Tok::Ident(w) => Some(w.clone()),
        Tok::Kw(k) => Some(k.as_str().to_string()),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Pass 5: nesting and depth
// ---------------------------------------------------------------------------------------------

fn check_depth(src: &str, toks: &[Spanned]) -> Result<(), ParseError> {
    // One frame per open bracket: (depth-creating tokens since the last `,`/`;`, pipes since
    // the last `;`). The AST depth is bounded by the sum over the open frames.
    let mut frames: Vec<(usize, usize)> = vec![(0, 0)];
    let mut total = 0usize;
    for (s, t, e) in toks {
        match t {
            Tok::LParen | Tok::LBracket | Tok::LBrace => {
                if frames.len() > MAX_NESTING {
                    return Err(err(
                        ParseErrorKind::TooComplex,
                        format!("brackets nested deeper than {MAX_NESTING} levels"),
                        *s,
                        *e,
                        src,
                    ));
                }
                if let Some(top) = frames.last_mut() {
                    top.0 += 1;
                }
                total += 1;
                frames.push((0, 0));
            }
            Tok::RParen | Tok::RBracket | Tok::RBrace => {
                if frames.len() > 1
                    && let Some((a, b)) = frames.pop()
                {
                    total -= a + b;
                }
            }
            Tok::Comma => {
                if let Some(top) = frames.last_mut() {
                    total -= top.0;
                    top.0 = 0;
                }
            }
            Tok::Semi => {
                if let Some(top) = frames.last_mut() {
                    total -= top.0 + top.1;
                    top.0 = 0;
                    top.1 = 0;
                }
            }
            Tok::Pipe => {
                if let Some(top) = frames.last_mut() {
                    top.1 += 1;
                }
                total += 1;
            }
            Tok::Ident(_)
            | Tok::ParamName(_)
            | Tok::Str(_)
            | Tok::Long(_)
            | Tok::Real(_)
            | Tok::Timespan(_)
            | Tok::TypedLit(_)
            | Tok::RawText(_)
            | Tok::DollarLeft
            | Tok::DollarRight => {}
            _ => {
                if let Some(top) = frames.last_mut() {
                    top.0 += 1;
                }
                total += 1;
            }
        }
        if total > MAX_DEPTH {
            return Err(err(
                ParseErrorKind::TooComplex,
                format!("expression too complex: more than {MAX_DEPTH} nested operators"),
                *s,
                *e,
                src,
            ));
        }
    }
    Ok(())
}

/// Human name of a token for error messages (`'|'`, `identifier`, `keyword 'where'`).
pub fn describe(t: &Tok) -> String {
    match t {
        Tok::Ident(w) => format!("identifier '{}'", clip(w)),
        Tok::ParamName(w) => format!("parameter '{}'", clip(w)),
        Tok::Str(_) => "string literal".into(),
        Tok::Long(_) | Tok::Real(_) => "number".into(),
        Tok::Timespan(_) => "timespan literal".into(),
        Tok::TypedLit(_) => "literal".into(),
        Tok::RawText(_) => "inline data".into(),
        Tok::StrOp(op) => format!("'{}'", op.as_str()),
        Tok::Kw(k) => format!("'{}'", k.as_str()),
        Tok::Unsupported(w) => format!("'{}'", clip(w)),
        other => format!("'{}'", punct_text(other)),
    }
}

fn punct_text(t: &Tok) -> &'static str {
    match t {
        Tok::Pipe => "|",
        Tok::LParen => "(",
        Tok::RParen => ")",
        Tok::LBracket => "[",
        Tok::RBracket => "]",
        Tok::LBrace => "{",
        Tok::RBrace => "}",
        Tok::Comma => ",",
        Tok::Semi => ";",
        Tok::Dot => ".",
        Tok::DotDot => "..",
        Tok::Assign => "=",
        Tok::EqEq => "==",
        Tok::NotEq => "!=",
        Tok::LtGt => "<>",
        Tok::Lt => "<",
        Tok::LtEq => "<=",
        Tok::Gt => ">",
        Tok::GtEq => ">=",
        Tok::EqTilde => "=~",
        Tok::NotTilde => "!~",
        Tok::Plus => "+",
        Tok::Minus => "-",
        Tok::Star => "*",
        Tok::Slash => "/",
        Tok::Percent => "%",
        Tok::Colon => ":",
        Tok::FatArrow => "=>",
        Tok::LtPipe => "<|",
        Tok::DollarLeft => "$left",
        Tok::DollarRight => "$right",
        _ => "?",
    }
}

impl fmt::Display for Tok {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&describe(self))
    }
}
