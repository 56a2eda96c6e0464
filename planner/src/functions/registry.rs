//! The table of the KQL functions Kustodian implements: scalar functions and aggregates, each
//! with its name, the aliases Kusto documents for it, how many arguments it takes and the
//! function that lowers a call of it.
//!
//! A call is found with one lookup in a map built once from the table; its argument count is
//! checked here, from the table, before the lowering runs, so every function reports a wrong
//! count the same way. A lowering receives the name as the query wrote it (an alias or the
//! canonical name), so that one function can serve a family (`startofday`, `startofweek`...)
//! and messages name what the user wrote. Result types are computed by the lowerings, since
//! most depend on the argument types.

use std::collections::HashMap;
use std::sync::LazyLock;

use super::aggregate::{self as agg, AggregateLowering};
use super::{FunctionContext, TypedExpr};
use super::{array, bag, base64, conversion, datetime, dynamic_schema, sketches, geo, hash, ip, json, logic, math, parsers, random, regex, series, string, units, url};
use crate::error::{PlanError, Result};

/// Lowers a scalar call: the name as written, the typed arguments (their count already
/// checked), the request's context.
pub(crate) type ScalarLowering = fn(&str, Vec<TypedExpr>, &FunctionContext) -> Result<TypedExpr>;

/// Lowers an aggregate call to one column: the name as written, the typed arguments, the
/// arguments' column names (for the result column's default name).
pub(crate) type SingleAggregate = fn(&str, Vec<TypedExpr>, Vec<Option<String>>) -> Result<AggregateLowering>;

/// Lowers an aggregate call that may yield several columns (`arg_max(by, c1, c2)`).
pub(crate) type ColumnsAggregate = fn(&str, Vec<TypedExpr>, Vec<Option<String>>) -> Result<Vec<AggregateLowering>>;

/// How many arguments a function takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Arity {
    /// Between the two counts, inclusive.
    Between(usize, usize),
    /// At least this many.
    AtLeast(usize),
    /// A rule no count range says (predicate/value pairs then an else value, key/value pairs,
    /// a value then percentiles): the lowering checks it and explains it in its own words.
    Shape,
}

impl Arity {
    /// Checks the argument count of a call of `name`.
    pub(crate) fn check(self, name: &str, n: usize) -> Result<()> {
        match self {
            Arity::Between(lo, hi) if n < lo || n > hi => {
                let expect = if lo == hi { lo.to_string() } else { format!("{lo} to {hi}") };
                Err(PlanError::semantic(format!("function '{name}' expects {expect} arguments, got {n}")))
            }
            Arity::AtLeast(lo) if n < lo => {
                let s = if lo == 1 { "" } else { "s" };
                Err(PlanError::semantic(format!("function '{name}' expects at least {lo} argument{s}")))
            }
            _ => Ok(()),
        }
    }
}

/// A scalar function of the table.
pub(crate) struct Scalar {
    pub(crate) name: &'static str,
    pub(crate) aliases: &'static [&'static str],
    pub(crate) arity: Arity,
    pub(crate) lower: ScalarLowering,
}

/// The two ways an aggregate is lowered.
#[derive(Clone, Copy)]
pub(crate) enum AggregateForm {
    Single(SingleAggregate),
    Columns(ColumnsAggregate),
}

/// An aggregate function of the table.
pub(crate) struct Aggregate {
    pub(crate) name: &'static str,
    pub(crate) aliases: &'static [&'static str],
    pub(crate) arity: Arity,
    pub(crate) lower: AggregateForm,
}

/// A scalar function taking `lo` to `hi` arguments.
const fn f(name: &'static str, lo: usize, hi: usize, lower: ScalarLowering) -> Scalar {
    Scalar { name, aliases: &[], arity: Arity::Between(lo, hi), lower }
}

/// A scalar function with aliases, taking `lo` to `hi` arguments.
const fn fa(name: &'static str, aliases: &'static [&'static str], lo: usize, hi: usize, lower: ScalarLowering) -> Scalar {
    Scalar { name, aliases, arity: Arity::Between(lo, hi), lower }
}

/// A scalar function whose arguments' shape its lowering checks.
const fn shaped(name: &'static str, aliases: &'static [&'static str], lower: ScalarLowering) -> Scalar {
    Scalar { name, aliases, arity: Arity::Shape, lower }
}

/// An aggregate of one column.
const fn a1(name: &'static str, aliases: &'static [&'static str], arity: Arity, lower: SingleAggregate) -> Aggregate {
    Aggregate { name, aliases, arity, lower: AggregateForm::Single(lower) }
}

/// An aggregate of one or more columns.
const fn an(name: &'static str, aliases: &'static [&'static str], arity: Arity, lower: ColumnsAggregate) -> Aggregate {
    Aggregate { name, aliases, arity, lower: AggregateForm::Columns(lower) }
}

/// Upper bound of the variadic functions (`strcat`, `pack_array`, `coalesce`...).
const MANY: usize = 64;

#[rustfmt::skip]
static SCALARS: &[Scalar] = &[
    // ---- conversion
    f("tolong", 1, 1, conversion::lower_to),
    f("toint", 1, 1, conversion::lower_to),
    fa("toreal", &["todouble"], 1, 1, conversion::lower_to),
    f("tostring", 1, 1, conversion::lower_to),
    fa("tobool", &["toboolean"], 1, 1, conversion::lower_to),
    fa("todatetime", &["todate"], 1, 1, conversion::lower_to),
    fa("totimespan", &["totime"], 1, 1, conversion::lower_to),
    f("todecimal", 1, 1, conversion::lower_to),
    f("toguid", 1, 1, conversion::lower_to),
    fa("parse_json", &["todynamic", "toobject", "parsejson"], 1, 1, conversion::lower_to),
    f("gettype", 1, 1, conversion::lower_gettype),
    f("tohex", 1, 2, conversion::lower_tohex),
    // ---- strings
    f("strcat", 1, MANY, string::lower_strcat),
    f("strcat_delim", 3, MANY + 1, string::lower_strcat_delim),
    f("strlen", 1, 1, string::lower_strlen),
    f("substring", 2, 3, string::lower_substring),
    f("tolower", 1, 1, string::lower_tolower),
    f("toupper", 1, 1, string::lower_toupper),
    f("split", 2, 3, string::lower_split),
    f("replace_string", 3, 3, string::lower_replace_string),
    f("indexof", 2, 5, string::lower_indexof),
    f("countof", 2, 3, string::lower_countof),
    f("reverse", 1, 1, string::lower_reverse),
    f("strrep", 2, 3, string::lower_strrep),
    f("strcmp", 2, 2, string::lower_strcmp),
    f("has_any_index", 2, 2, string::lower_has_any_index),
    // ---- series
    f("series_abs", 1, 1, series::lower_series),
    f("series_acos", 1, 1, series::lower_series),
    f("series_asin", 1, 1, series::lower_series),
    f("series_atan", 1, 1, series::lower_series),
    f("series_ceiling", 1, 1, series::lower_series),
    f("series_cos", 1, 1, series::lower_series),
    f("series_exp", 1, 1, series::lower_series),
    f("series_floor", 1, 1, series::lower_series),
    f("series_log", 1, 1, series::lower_series),
    f("series_sign", 1, 1, series::lower_series),
    f("series_sin", 1, 1, series::lower_series),
    f("series_tan", 1, 1, series::lower_series),
    f("series_add", 2, 2, series::lower_series),
    f("series_subtract", 2, 2, series::lower_series),
    f("series_multiply", 2, 2, series::lower_series),
    f("series_divide", 2, 2, series::lower_series),
    f("series_pow", 2, 2, series::lower_series),
    f("series_greater", 2, 2, series::lower_series),
    f("series_greater_equals", 2, 2, series::lower_series),
    f("series_less", 2, 2, series::lower_series),
    f("series_less_equals", 2, 2, series::lower_series),
    f("series_equals", 2, 2, series::lower_series),
    f("series_not_equals", 2, 2, series::lower_series),
    f("series_sum", 1, 1, series::lower_series),
    f("series_product", 1, 1, series::lower_series),
    f("series_magnitude", 1, 1, series::lower_series),
    f("series_dot_product", 2, 2, series::lower_series),
    f("series_cosine_similarity", 2, 2, series::lower_series),
    f("series_pearson_correlation", 2, 2, series::lower_series),
    f("series_stats_dynamic", 1, 2, series::lower_series),
    f("series_fit_line_dynamic", 1, 1, series::lower_series),
    f("series_fill_const", 1, 3, series::lower_series),
    f("series_fill_forward", 1, 2, series::lower_series),
    f("series_fill_backward", 1, 2, series::lower_series),
    f("series_fill_linear", 1, 4, series::lower_series),
    f("series_fir", 2, 4, series::lower_series),
    f("series_iir", 3, 3, series::lower_series),
    f("series_outliers", 1, 5, series::lower_series),
    f("series_seasonal", 1, 2, series::lower_series),
    f("series_fit_2lines_dynamic", 1, 1, series::lower_series),
    // ---- geospatial
    f("geo_distance_2points", 4, 5, geo::lower_geo),
    f("geo_point_in_circle", 5, 5, geo::lower_geo),
    f("geo_angle", 6, 6, geo::lower_geo),
    f("geo_azimuth", 4, 4, geo::lower_geo),
    f("geo_point_in_polygon", 3, 3, geo::lower_geo),
    f("geo_distance_point_to_line", 3, 3, geo::lower_geo),
    f("geo_distance_point_to_polygon", 3, 3, geo::lower_geo),
    f("geo_line_length", 1, 1, geo::lower_geo),
    f("geo_line_centroid", 1, 1, geo::lower_geo),
    f("geo_polygon_area", 1, 1, geo::lower_geo),
    f("geo_polygon_perimeter", 1, 1, geo::lower_geo),
    f("geo_polygon_centroid", 1, 1, geo::lower_geo),
    f("geo_intersects_2lines", 2, 2, geo::lower_geo),
    f("geo_intersects_line_with_polygon", 2, 2, geo::lower_geo),
    f("geo_intersects_2polygons", 2, 2, geo::lower_geo),
    f("geo_point_to_geohash", 2, 3, geo::lower_geo),
    f("geo_geohash_to_central_point", 1, 1, geo::lower_geo),
    f("geo_geohash_to_polygon", 1, 1, geo::lower_geo),
    f("geo_geohash_neighbors", 1, 1, geo::lower_geo),
    f("geo_point_to_s2cell", 2, 3, geo::lower_geo),
    f("geo_s2cell_to_central_point", 1, 1, geo::lower_geo),
    f("geo_s2cell_to_polygon", 1, 1, geo::lower_geo),
    f("geo_s2cell_neighbors", 1, 1, geo::lower_geo),
    f("geo_point_to_h3cell", 2, 3, geo::lower_geo),
    f("geo_h3cell_to_central_point", 1, 1, geo::lower_geo),
    f("geo_h3cell_to_polygon", 1, 1, geo::lower_geo),
    f("geo_h3cell_level", 1, 1, geo::lower_geo),
    f("geo_h3cell_children", 1, 2, geo::lower_geo),
    f("geo_h3cell_parent", 1, 2, geo::lower_geo),
    f("geo_h3cell_neighbors", 1, 1, geo::lower_geo),
    f("geo_h3cell_rings", 2, 2, geo::lower_geo),
    f("geo_line_interpolate_point", 2, 2, geo::lower_geo),
    f("geo_line_locate_point", 3, 4, geo::lower_geo),
    f("geo_closest_point_on_line", 3, 3, geo::lower_geo),
    f("geo_closest_point_on_polygon", 3, 3, geo::lower_geo),
    f("geo_line_densify", 1, 3, geo::lower_geo),
    f("geo_polygon_densify", 1, 3, geo::lower_geo),
    f("geo_from_wkt", 1, 1, geo::lower_geo),
    f("geo_polygon_to_s2cells", 1, 3, geo::lower_geo),
    f("geo_line_to_s2cells", 1, 3, geo::lower_geo),
    f("geo_polygon_to_h3cells", 1, 3, geo::lower_geo),
    f("geo_point_buffer", 3, 4, geo::lower_geo),
    f("geo_line_simplify", 1, 2, geo::lower_geo),
    f("geo_intersection_2lines", 2, 2, geo::lower_geo),
    f("geo_intersection_line_with_polygon", 2, 2, geo::lower_geo),
    f("geo_union_lines_array", 1, 1, geo::lower_geo),
    f("geo_union_polygons_array", 1, 1, geo::lower_geo),
    f("geo_intersection_2polygons", 2, 2, geo::lower_geo),
    f("geo_polygon_simplify", 1, 2, geo::lower_geo),
    // ---- unit conversions
    f("convert_angle", 3, 3, units::lower_convert),
    f("convert_energy", 3, 3, units::lower_convert),
    f("convert_force", 3, 3, units::lower_convert),
    f("convert_length", 3, 3, units::lower_convert),
    f("convert_mass", 3, 3, units::lower_convert),
    f("convert_speed", 3, 3, units::lower_convert),
    f("convert_temperature", 3, 3, units::lower_convert),
    f("convert_volume", 3, 3, units::lower_convert),
    f("replace_strings", 3, 3, string::lower_replace_strings),
    fa("strcat_array", &["array_strcat"], 2, 2, string::lower_strcat_array),
    fa("unicode_codepoints_from_string", &["to_utf8"], 1, 1, string::lower_unicode_codepoints_from_string),
    f("isascii", 1, 1, string::lower_isascii),
    f("isutf8", 1, 1, string::lower_isascii),
    f("regex_quote", 1, 1, string::lower_regex_quote),
    f("punycode_domain_from_string", 1, 1, string::lower_punycode_domain),
    f("punycode_domain_to_string", 1, 1, string::lower_punycode_domain),
    f("punycode_from_string", 1, 1, string::lower_punycode),
    fa("unicode_codepoints_to_string", &["make_string"], 1, 64, string::lower_codepoints_to_string),
    f("punycode_to_string", 1, 1, string::lower_punycode),
    f("string_size", 1, 1, string::lower_string_size),
    f("translate", 3, 3, string::lower_translate),
    f("format_bytes", 1, 3, string::lower_format_bytes),
    // ---- regular expressions
    f("trim", 2, 2, regex::lower_trim),
    f("trim_start", 2, 2, regex::lower_trim),
    f("trim_end", 2, 2, regex::lower_trim),
    f("replace_regex", 3, 3, regex::lower_replace_regex),
    f("replace", 3, 3, regex::lower_replace_regex),
    f("extract", 3, 4, regex::lower_extract),
    fa("extract_all", &["extractall"], 2, 3, regex::lower_extract_all),
    f("indexof_regex", 2, 5, regex::lower_indexof_regex),
    // ---- hashes
    fa("hash", &["hash_xxhash64"], 1, 2, hash::lower_hash),
    f("hash_sha1", 1, 1, hash::lower_hash_sha1),
    f("gzip_decompress_from_base64_string", 1, 1, base64::lower_decompress),
    f("zlib_decompress_from_base64_string", 1, 1, base64::lower_decompress),
    f("gzip_compress_to_base64_string", 1, 1, base64::lower_compress),
    f("zlib_compress_to_base64_string", 1, 1, base64::lower_compress),
    f("hash_sha256", 1, 1, hash::lower_hash_sha256),
    f("hash_md5", 1, 1, hash::lower_hash_md5),
    // ---- base64
    fa("base64_encode_tostring", &["base64_encodestring"], 1, 1, base64::lower_base64_encode_tostring),
    fa("base64_decode_tostring", &["base64_decodestring"], 1, 1, base64::lower_base64_decode_tostring),
    f("base64_decode_toarray", 1, 1, base64::lower_base64_decode_toarray),
    f("base64_encode_fromarray", 1, 1, base64::lower_base64_encode_fromarray),
    f("base64_decode_toguid", 1, 1, base64::lower_base64_decode_toguid),
    f("base64_encode_fromguid", 1, 1, base64::lower_base64_encode_fromguid),
    // ---- URLs
    fa("parse_url", &["parseurl"], 1, 1, url::lower_parse_url),
    fa("parse_urlquery", &["parseurlquery"], 1, 1, url::lower_parse_urlquery),
    f("url_encode", 1, 1, url::lower_url_encode),
    f("url_encode_component", 1, 1, url::lower_url_encode_component),
    f("url_decode", 1, 1, url::lower_url_decode),
    // ---- other parsers
    f("parse_csv", 1, 1, parsers::lower_parse_csv),
    f("parse_version", 1, 1, parsers::lower_parse_version),
    f("parse_path", 1, 1, parsers::lower_parse_path),
    f("parse_command_line", 2, 2, parsers::lower_parse_command_line),
    // ---- IPv4
    f("parse_ipv4", 1, 1, ip::lower_parse_ipv4),
    f("parse_ipv4_mask", 2, 2, ip::lower_parse_ipv4_mask),
    f("ipv4_compare", 2, 3, ip::lower_ip_compare),
    f("ipv4_is_match", 2, 3, ip::lower_ip_compare),
    f("ipv4_is_in_range", 2, 2, ip::lower_ipv4_is_in_range),
    f("ipv4_is_in_any_range", 2, 64, ip::lower_is_in_any_range),
    f("ipv4_range_to_cidr_list", 2, 2, ip::lower_ipv4_range_to_cidr_list),
    f("has_ipv4", 2, 2, ip::lower_has_ipv4),
    f("has_any_ipv4", 2, 64, ip::lower_has_ipv4),
    f("has_ipv4_prefix", 2, 2, ip::lower_has_ipv4),
    f("has_any_ipv4_prefix", 2, 64, ip::lower_has_ipv4),
    f("ipv6_compare", 2, 3, ip::lower_ip_compare),
    f("parse_ipv6", 1, 1, ip::lower_parse_ipv6),
    f("parse_ipv6_mask", 2, 2, ip::lower_parse_ipv6),
    f("ipv6_is_match", 2, 3, ip::lower_ip_compare),
    f("ipv6_is_in_range", 2, 2, ip::lower_ipv6_is_in_range),
    f("ipv6_is_in_any_range", 2, 64, ip::lower_is_in_any_range),
    f("ipv4_is_private", 1, 1, ip::lower_ipv4_is_private),
    f("ipv4_netmask_suffix", 1, 1, ip::lower_ipv4_netmask_suffix),
    f("format_ipv4", 1, 2, ip::lower_format_ipv4),
    f("format_ipv4_mask", 1, 2, ip::lower_format_ipv4),
    // ---- math
    f("abs", 1, 1, math::lower_abs_ceiling),
    f("ceiling", 1, 1, math::lower_abs_ceiling),
    f("round", 1, 2, math::lower_round),
    fa("bin", &["floor"], 2, 2, math::lower_bin),
    f("bin_at", 3, 3, math::lower_bin),
    f("sqrt", 1, 1, math::lower_unary_real),
    f("exp", 1, 1, math::lower_unary_real),
    f("exp2", 1, 1, math::lower_unary_real),
    f("exp10", 1, 1, math::lower_unary_real),
    f("log", 1, 1, math::lower_unary_real),
    f("log2", 1, 1, math::lower_unary_real),
    f("log10", 1, 1, math::lower_unary_real),
    f("sign", 1, 1, math::lower_unary_real),
    f("pow", 2, 2, math::lower_pow),
    f("pi", 0, 0, math::lower_pi),
    f("isnan", 1, 1, math::lower_fclass),
    f("isinf", 1, 1, math::lower_fclass),
    f("isfinite", 1, 1, math::lower_fclass),
    f("cos", 1, 1, math::lower_trig),
    f("sin", 1, 1, math::lower_trig),
    f("tan", 1, 1, math::lower_trig),
    f("acos", 1, 1, math::lower_trig),
    f("asin", 1, 1, math::lower_trig),
    f("atan", 1, 1, math::lower_trig),
    f("cot", 1, 1, math::lower_trig),
    f("degrees", 1, 1, math::lower_trig),
    f("radians", 1, 1, math::lower_trig),
    f("atan2", 2, 2, math::lower_atan2),
    f("gamma", 1, 1, math::lower_gamma),
    f("erf", 1, 1, math::lower_erf),
    f("around", 3, 3, math::lower_around),
    f("erfc", 1, 1, math::lower_erf),
    f("beta_cdf", 3, 3, math::lower_beta),
    f("welch_test", 6, 6, math::lower_welch_test),
    f("beta_pdf", 3, 3, math::lower_beta),
    f("beta_inv", 3, 3, math::lower_beta),
    f("loggamma", 1, 1, math::lower_gamma),
    f("bitset_count_ones", 1, 1, math::lower_bitset_count_ones),
    f("binary_and", 2, 2, math::lower_binary_op),
    f("binary_or", 2, 2, math::lower_binary_op),
    f("binary_xor", 2, 2, math::lower_binary_op),
    f("binary_not", 1, 1, math::lower_binary_op),
    f("binary_shift_left", 2, 2, math::lower_binary_op),
    f("binary_shift_right", 2, 2, math::lower_binary_op),
    f("rand", 0, 1, random::lower_rand),
    f("new_guid", 0, 0, random::lower_new_guid),
    // ---- datetime
    f("now", 0, 1, datetime::lower_now),
    f("ago", 1, 1, datetime::lower_ago),
    f("datetime_add", 3, 3, datetime::lower_datetime_add),
    f("datetime_utc_to_local", 2, 2, datetime::lower_time_zone),
    f("datetime_local_to_utc", 2, 2, datetime::lower_time_zone),
    f("datetime_diff", 3, 3, datetime::lower_datetime_diff),
    fa("datetime_part", &["datepart"], 2, 2, datetime::lower_datetime_part),
    f("startofday", 1, 2, datetime::lower_start_end_of),
    f("startofweek", 1, 2, datetime::lower_start_end_of),
    f("startofmonth", 1, 2, datetime::lower_start_end_of),
    f("startofyear", 1, 2, datetime::lower_start_end_of),
    f("endofday", 1, 2, datetime::lower_start_end_of),
    f("endofweek", 1, 2, datetime::lower_start_end_of),
    f("endofmonth", 1, 2, datetime::lower_start_end_of),
    f("endofyear", 1, 2, datetime::lower_start_end_of),
    f("dayofweek", 1, 1, datetime::lower_dayofweek),
    f("dayofmonth", 1, 1, datetime::lower_part_of),
    f("dayofyear", 1, 1, datetime::lower_part_of),
    f("getyear", 1, 1, datetime::lower_part_of),
    f("getmonth", 1, 1, datetime::lower_part_of),
    f("monthofyear", 1, 1, datetime::lower_part_of),
    fa("week_of_year", &["weekofyear"], 1, 1, datetime::lower_part_of),
    f("hourofday", 1, 1, datetime::lower_part_of),
    f("unixtime_seconds_todatetime", 1, 1, datetime::lower_unixtime),
    f("unixtime_milliseconds_todatetime", 1, 1, datetime::lower_unixtime),
    f("unixtime_microseconds_todatetime", 1, 1, datetime::lower_unixtime),
    f("unixtime_nanoseconds_todatetime", 1, 1, datetime::lower_unixtime),
    f("make_datetime", 3, 6, datetime::lower_make_datetime),
    f("make_timespan", 2, 4, datetime::lower_make_timespan),
    f("format_datetime", 2, 2, datetime::lower_format_datetime),
    f("format_timespan", 2, 2, datetime::lower_format_timespan),
    // ---- arrays
    f("pack_array", 1, MANY, array::lower_pack_array),
    fa("array_length", &["arraylength"], 1, 1, array::lower_array_length),
    f("array_concat", 1, MANY, array::lower_array_concat),
    // graph-mark-components' lowering (`bind::graph`): not a Kusto function.
    f("__kql_graph_components", 3, 3, super::graph::lower_components),
    f("array_slice", 3, 3, array::lower_array_slice),
    f("array_index_of", 2, 5, array::lower_array_index_of),
    f("array_sum", 1, 1, array::lower_array_sum),
    f("array_sort_asc", 1, 2, array::lower_array_sort),
    f("array_sort_desc", 1, 2, array::lower_array_sort),
    fa("array_iff", &["array_iif"], 3, 3, array::lower_array_iff),
    f("array_reverse", 1, 1, array::lower_array_reverse),
    f("array_shift_left", 2, 3, array::lower_array_shift),
    f("array_shift_right", 2, 3, array::lower_array_shift),
    f("array_rotate_left", 2, 2, array::lower_array_rotate),
    f("array_rotate_right", 2, 2, array::lower_array_rotate),
    f("array_split", 2, 2, array::lower_array_split),
    f("repeat", 2, 2, array::lower_repeat),
    f("range", 2, 3, array::lower_range),
    f("zip", 2, 16, array::lower_zip),
    f("set_union", 2, MANY, array::lower_set_op),
    f("set_intersect", 2, MANY, array::lower_set_op),
    f("set_difference", 2, MANY, array::lower_set_op),
    f("set_has_element", 2, 2, array::lower_set_has_element),
    f("jaccard_index", 2, 2, array::lower_jaccard_index),
    // ---- property bags
    shaped("bag_pack", &["pack", "pack_dictionary"], bag::lower_bag_pack),
    f("bag_pack_columns", 1, MANY, bag::lower_bag_pack_columns),
    f("bag_keys", 1, 1, bag::lower_bag_keys),
    f("dynamic_to_json", 1, 1, dynamic_schema::lower_dynamic_to_json),
    f("treepath", 1, 1, dynamic_schema::lower_treepath),
    f("hll_merge", 2, MANY, sketches::lower_sketch_scalar),
    f("dcount_hll", 1, 1, sketches::lower_sketch_scalar),
    f("merge_tdigest", 1, MANY, sketches::lower_sketch_scalar),
    f("percentile_tdigest", 2, 3, sketches::lower_percentile_tdigest),
    f("percentiles_array_tdigest", 2, MANY, sketches::lower_percentile_tdigest),
    f("rank_tdigest", 2, 2, sketches::lower_rank_tdigest),
    f("bag_has_key", 2, 2, bag::lower_bag_has_key),
    f("bag_merge", 2, MANY, bag::lower_bag_merge),
    f("bag_remove_keys", 2, 2, bag::lower_bag_remove_keys),
    f("bag_zip", 2, 2, bag::lower_bag_zip),
    f("bag_set_key", 3, 3, bag::lower_bag_set_key),
    // ---- JSON
    fa("extract_json", &["extractjson"], 2, 3, json::lower_extract_json),
    // ---- logic and conditionals
    fa("iff", &["iif"], 3, 3, logic::lower_iff),
    shaped("case", &[], logic::lower_case),
    f("coalesce", 1, MANY, logic::lower_coalesce),
    f("not", 1, 1, logic::lower_not),
    f("min_of", 1, MANY, logic::lower_min_max_of),
    f("max_of", 1, MANY, logic::lower_min_max_of),
    f("isempty", 1, 1, logic::lower_isempty),
    fa("isnotempty", &["notempty"], 1, 1, logic::lower_isempty),
    f("isnull", 1, 1, logic::lower_isnull),
    fa("isnotnull", &["notnull"], 1, 1, logic::lower_isnull),
];

#[rustfmt::skip]
static AGGREGATES: &[Aggregate] = &[
    a1("count", &[], Arity::Between(0, 1), agg::lower_count),
    a1("countif", &[], Arity::Between(1, 1), agg::lower_countif),
    a1("sum", &[], Arity::AtLeast(1), agg::lower_sum),
    a1("sumif", &[], Arity::AtLeast(2), agg::lower_sum),
    a1("avg", &[], Arity::AtLeast(1), agg::lower_avg),
    a1("avgif", &[], Arity::AtLeast(2), agg::lower_avg),
    a1("min", &[], Arity::AtLeast(1), agg::lower_min_max),
    a1("max", &[], Arity::AtLeast(1), agg::lower_min_max),
    a1("minif", &[], Arity::AtLeast(2), agg::lower_min_max),
    a1("maxif", &[], Arity::AtLeast(2), agg::lower_min_max),
    a1("dcount", &[], Arity::AtLeast(1), agg::lower_dcount),
    a1("dcountif", &[], Arity::AtLeast(2), agg::lower_dcount),
    a1("count_distinct", &[], Arity::AtLeast(1), agg::lower_dcount),
    a1("count_distinctif", &[], Arity::AtLeast(2), agg::lower_dcount),
    a1("make_list", &[], Arity::AtLeast(1), agg::lower_make_collection),
    a1("make_list_if", &[], Arity::AtLeast(2), agg::lower_make_collection),
    a1("make_set", &["makeset"], Arity::AtLeast(1), agg::lower_make_collection),
    a1("make_set_if", &[], Arity::AtLeast(2), agg::lower_make_collection),
    a1("make_bag", &[], Arity::AtLeast(1), agg::lower_make_collection),
    a1("make_bag_if", &[], Arity::AtLeast(2), agg::lower_make_collection),
    a1("make_list_with_nulls", &[], Arity::Between(1, 2), agg::lower_make_list_with_nulls),
    a1("stdev", &[], Arity::AtLeast(1), agg::lower_stdev_variance),
    a1("stdevif", &[], Arity::AtLeast(2), agg::lower_stdev_variance),
    a1("variance", &[], Arity::AtLeast(1), agg::lower_stdev_variance),
    a1("varianceif", &[], Arity::AtLeast(2), agg::lower_stdev_variance),
    a1("stdevp", &[], Arity::AtLeast(1), agg::lower_stdev_variance),
    a1("variancep", &[], Arity::AtLeast(1), agg::lower_stdev_variance),
    a1("variancepif", &[], Arity::AtLeast(2), agg::lower_stdev_variance),
    a1("stdevpif", &[], Arity::AtLeast(2), agg::lower_stdev_variance),
    a1("covariance", &[], Arity::Between(2, 2), agg::lower_covariance),
    a1("covarianceif", &[], Arity::Between(3, 3), agg::lower_covariance),
    a1("covariancep", &[], Arity::Between(2, 2), agg::lower_covariance),
    a1("covariancepif", &[], Arity::Between(3, 3), agg::lower_covariance),
    a1("binary_all_and", &[], Arity::AtLeast(1), agg::lower_binary_all),
    a1("binary_all_or", &[], Arity::AtLeast(1), agg::lower_binary_all),
    a1("binary_all_xor", &[], Arity::AtLeast(1), agg::lower_binary_all),
    a1("buildschema", &[], Arity::Between(1, 1), dynamic_schema::lower_buildschema),
    a1("hll", &[], Arity::Between(1, 2), sketches::lower_hll),
    a1("hll_if", &[], Arity::Between(2, 3), sketches::lower_hll),
    a1("hll_merge", &[], Arity::Between(1, 1), sketches::lower_sketch_merge),
    a1("tdigest", &[], Arity::Between(1, 2), sketches::lower_tdigest),
    a1("tdigest_merge", &["merge_tdigest"], Arity::Between(1, 1), sketches::lower_sketch_merge),
    a1("take_anyif", &["anyif"], Arity::AtLeast(2), agg::lower_take_anyif),
    a1("percentile", &[], Arity::Between(2, 2), agg::lower_percentile),
    a1("percentiles_array", &[], Arity::Shape, agg::lower_percentiles_array),
    a1("percentilew", &[], Arity::Between(3, 3), agg::lower_percentilew),
    a1("percentilesw_array", &[], Arity::Shape, agg::lower_percentilesw_array),
    an("percentiles", &[], Arity::Shape, agg::lower_percentiles),
    an("percentilesw", &[], Arity::Shape, agg::lower_percentilesw),
    an("take_any", &["any"], Arity::AtLeast(1), agg::lower_take_any),
    an("arg_max", &[], Arity::AtLeast(1), agg::lower_arg_extreme),
    an("arg_min", &[], Arity::AtLeast(1), agg::lower_arg_extreme),
];

/// Every name and alias of `table`, to its entry.
fn index<T>(table: &'static [T], names: fn(&'static T) -> (&'static str, &'static [&'static str])) -> HashMap<&'static str, &'static T> {
    let mut map = HashMap::with_capacity(table.len() * 2);
    for entry in table {
        let (name, aliases) = names(entry);
        map.insert(name, entry);
        for alias in aliases {
            map.insert(*alias, entry);
        }
    }
    map
}

static SCALAR_INDEX: LazyLock<HashMap<&'static str, &'static Scalar>> = LazyLock::new(|| index(SCALARS, |s| (s.name, s.aliases)));

static AGGREGATE_INDEX: LazyLock<HashMap<&'static str, &'static Aggregate>> =
    LazyLock::new(|| index(AGGREGATES, |a| (a.name, a.aliases)));

/// The scalar function `name` (a name or an alias; case-sensitive, as Kusto).
pub(crate) fn scalar(name: &str) -> Option<&'static Scalar> {
    SCALAR_INDEX.get(name).copied()
}

/// The aggregate function `name` (a name or an alias).
pub(crate) fn aggregate(name: &str) -> Option<&'static Aggregate> {
    AGGREGATE_INDEX.get(name).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_names() -> Vec<&'static str> {
        let scalars = SCALARS.iter().flat_map(|s| std::iter::once(s.name).chain(s.aliases.iter().copied()));
        let aggregates = AGGREGATES.iter().flat_map(|a| std::iter::once(a.name).chain(a.aliases.iter().copied()));
        scalars.chain(aggregates).collect()
    }

    /// Names Kusto gives both a scalar function and an aggregate (the scalar merges its
    /// arguments, the aggregate its group's values).
    const BOTH: &[&str] = &["hll_merge", "merge_tdigest"];

    #[test]
    fn every_name_is_listed_once() {
        let names = all_names();
        let mut seen = std::collections::HashSet::new();
        for n in &names {
            assert!(seen.insert(*n) || BOTH.contains(n), "'{n}' is listed twice");
        }
        for n in BOTH {
            assert!(SCALAR_INDEX.contains_key(n) && AGGREGATE_INDEX.contains_key(n), "'{n}' is a scalar and an aggregate");
        }
        assert_eq!(SCALAR_INDEX.len() + AGGREGATE_INDEX.len(), names.len());
    }

    #[test]
    fn aliases_find_their_function() {
        assert_eq!(scalar("iif").map(|s| s.name), Some("iff"));
        assert_eq!(scalar("todouble").map(|s| s.name), Some("toreal"));
        assert_eq!(scalar("parsejson").map(|s| s.name), Some("parse_json"));
        assert_eq!(aggregate("any").map(|a| a.name), Some("take_any"));
        assert!(scalar("count").is_none() && aggregate("strlen").is_none());
    }

    #[test]
    fn arity_messages() {
        let msg = |a: Arity, n: usize| a.check("f", n).err().map(|e| e.to_string());
        assert!(msg(Arity::Between(1, 1), 2).is_some_and(|m| m.contains("function 'f' expects 1 arguments, got 2")));
        assert!(msg(Arity::Between(2, 3), 1).is_some_and(|m| m.contains("function 'f' expects 2 to 3 arguments, got 1")));
        assert!(msg(Arity::AtLeast(1), 0).is_some_and(|m| m.contains("function 'f' expects at least 1 argument")));
        assert!(msg(Arity::AtLeast(2), 1).is_some_and(|m| m.contains("function 'f' expects at least 2 arguments")));
        assert_eq!(msg(Arity::Shape, 0), None);
        assert_eq!(msg(Arity::Between(0, 1), 1), None);
    }
}
