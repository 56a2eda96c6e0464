//! The body of a REST request, `{db, csl, properties}`, and its request properties.
//!
//! `properties` arrives as a JSON string holding an object (the Python client) or as an
//! object (other clients); `Options` are request properties, `Parameters` the values of
//! `declare query_parameters`, all strings.

use std::time::Duration;

use serde_json::Value;

use super::errors::ApiError;

/// What a request asks for.
#[derive(Debug, Clone, Default)]
pub struct RestRequest {
    pub db: Option<String>,
    pub csl: String,
    /// Request properties (`Options`), values as text.
    pub options: Vec<(String, String)>,
    /// Query parameters (`Parameters`), values as text.
    pub parameters: Vec<(String, String)>,
}

/// Kusto's result limits, from the request's options.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Rows written at most before the result is cut with a partial-failure error
    /// (`truncationmaxrecords`, 500,000); `None` with `notruncation`.
    pub max_records: Option<u64>,
    /// Bytes of row JSON written at most (`truncationmaxsize`, 64 MB); `None` with `notruncation`.
    pub max_size: Option<u64>,
    /// Rows returned at most, silently (`query_take_max_records`).
    pub take: Option<u64>,
    /// `servertimeout` (4 minutes by default, as Kusto's queries).
    pub timeout: Duration,
}

impl Limits {
    pub const DEFAULT_MAX_RECORDS: u64 = 500_000;
    pub const DEFAULT_MAX_SIZE: u64 = 64 * 1024 * 1024;
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(4 * 60);
    /// Kusto's ceiling for `servertimeout`.
    pub const MAX_TIMEOUT: Duration = Duration::from_secs(60 * 60);
}

impl RestRequest {
    /// Parses a POST body.
    pub fn from_json(body: &[u8]) -> Result<RestRequest, ApiError> {
        let v: Value = serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("the request body is not JSON: {e}")))?;
        let Value::Object(m) = v else {
            return Err(ApiError::bad_request("the request body must be a JSON object {\"db\", \"csl\", \"properties\"}"));
        };
        let db = match m.get("db") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.is_empty() => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(ApiError::bad_request("'db' must be a string")),
        };
        let csl = match m.get("csl") {
            Some(Value::String(s)) => s.clone(),
            _ => return Err(ApiError::bad_request("the request body has no 'csl' string (the query or command text)")),
        };
        let mut req = RestRequest { db, csl, ..RestRequest::default() };
        match m.get("properties") {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) if s.trim().is_empty() => {}
            Some(Value::String(s)) => {
                let p: Value = serde_json::from_str(s).map_err(|e| ApiError::bad_request(format!("'properties' is not JSON: {e}")))?;
                req.read_properties(&p)?;
            }
            Some(p @ Value::Object(_)) => req.read_properties(p)?,
            Some(_) => return Err(ApiError::bad_request("'properties' must be a JSON object or a string holding one")),
        }
        Ok(req)
    }

    /// Parses the query string of `GET /v1/rest/query?db=...&csl=...`.
    pub fn from_query_string(query: &str) -> Result<RestRequest, ApiError> {
        let mut req = RestRequest::default();
        let mut csl = None;
        for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
            match k.as_ref() {
                "db" if !v.is_empty() => req.db = Some(v.into_owned()),
                "csl" => csl = Some(v.into_owned()),
                "properties" => {
                    let p: Value =
                        serde_json::from_str(&v).map_err(|e| ApiError::bad_request(format!("'properties' is not JSON: {e}")))?;
                    req.read_properties(&p)?;
                }
                _ => {}
            }
        }
        req.csl = csl.ok_or_else(|| ApiError::bad_request("the request has no 'csl' parameter (the query text)"))?;
        Ok(req)
    }

    fn read_properties(&mut self, p: &Value) -> Result<(), ApiError> {
        let Value::Object(m) = p else {
            return Err(ApiError::bad_request("'properties' must be a JSON object {\"Options\", \"Parameters\"}"));
        };
        for (key, target) in [("Options", &mut self.options), ("Parameters", &mut self.parameters)] {
            match m.get(key) {
                None | Some(Value::Null) => {}
                Some(Value::Object(o)) => {
                    for (k, v) in o {
                        let text = match v {
                            Value::String(s) => s.clone(),
                            Value::Null => continue,
                            other => other.to_string(),
                        };
                        target.push((k.clone(), text));
                    }
                }
                Some(_) => return Err(ApiError::bad_request(format!("'properties.{key}' must be a JSON object"))),
            }
        }
        Ok(())
    }

    fn option(&self, name: &str) -> Option<&str> {
        self.options.iter().rev().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    fn flag(&self, name: &str) -> Result<bool, ApiError> {
        match self.option(name) {
            None => Ok(false),
            Some(v) => match v.to_ascii_lowercase().as_str() {
                "true" | "1" | "" => Ok(true),
                "false" | "0" => Ok(false),
                _ => Err(ApiError::bad_request(format!("request property '{name}': '{v}' is not a bool"))),
            },
        }
    }

    fn number(&self, name: &str) -> Result<Option<u64>, ApiError> {
        self.option(name)
            .map(|v| v.trim().parse::<u64>().map_err(|_| ApiError::bad_request(format!("request property '{name}': '{v}' is not a non-negative integer"))))
            .transpose()
    }

    /// The result limits the request's options ask for.
    pub fn limits(&self) -> Result<Limits, ApiError> {
        let no_truncation = self.flag("notruncation")?;
        let timeout = match self.option("servertimeout") {
            None => Limits::DEFAULT_TIMEOUT,
            Some(v) => parse_timeout(v)
                .ok_or_else(|| ApiError::bad_request(format!("request property 'servertimeout': '{v}' is not a timespan")))?
                .min(Limits::MAX_TIMEOUT),
        };
        Ok(Limits {
            max_records: if no_truncation { None } else { Some(self.number("truncationmaxrecords")?.unwrap_or(Limits::DEFAULT_MAX_RECORDS)) },
            max_size: if no_truncation { None } else { Some(self.number("truncationmaxsize")?.unwrap_or(Limits::DEFAULT_MAX_SIZE)) },
            take: self.number("query_take_max_records")?,
            timeout,
        })
    }

    /// The options the engine reads (the others are the server's: limits, timeouts).
    pub fn engine_properties(&self) -> Vec<(String, String)> {
        const SERVER: &[&str] =
            &["notruncation", "truncationmaxrecords", "truncationmaxsize", "query_take_max_records", "servertimeout"];
        self.options.iter().filter(|(k, _)| !SERVER.iter().any(|s| k.eq_ignore_ascii_case(s))).cloned().collect()
    }
}

/// A `servertimeout` value: Kusto's `[d.]hh:mm:ss[.f]`, Python's `str(timedelta)` (`0:01:00`,
/// `1 day, 0:00:00`), or a KQL timespan literal (`10m`, `1h`).
pub fn parse_timeout(v: &str) -> Option<Duration> {
    let v = v.trim();
    let (days, rest) = match v.split_once(" day") {
        Some((d, rest)) => (d.trim().parse::<u64>().ok()?, rest.trim_start_matches('s').trim_start_matches(',').trim()),
        None => (0, v),
    };
    if let Some(unit_at) = rest.find(|c: char| c.is_ascii_alphabetic()) {
        let n: f64 = rest[..unit_at].parse().ok()?;
        let secs = match &rest[unit_at..] {
            "d" => n * 86_400.0,
            "h" => n * 3_600.0,
            "m" => n * 60.0,
            "s" => n,
            "ms" => n / 1_000.0,
            _ => return None,
        };
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs + days as f64 * 86_400.0));
    }
    let (days, rest) = match rest.split_once('.') {
        Some((d, r)) if r.contains(':') && !d.contains(':') => (days + d.parse::<u64>().ok()?, r),
        _ => (days, rest),
    };
    let parts: Vec<&str> = rest.split(':').collect();
    let [h, m, s] = parts.as_slice() else { return None };
    let secs: f64 = s.parse().ok()?;
    let total = days * 86_400 + h.parse::<u64>().ok()? * 3_600 + m.parse::<u64>().ok()? * 60;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs(total) + Duration::from_secs_f64(secs))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn properties_as_a_string_or_an_object() {
        let a = RestRequest::from_json(
            br#"{"db":"D","csl":"T","properties":"{\"Options\": {\"servertimeout\": \"0:01:00\", \"request_readonly\": true}, \"Parameters\": {\"region\": \"r3\"}}"}"#,
        )
        .unwrap();
        let b = RestRequest::from_json(
            br#"{"db":"D","csl":"T","properties":{"Options": {"servertimeout": "0:01:00", "request_readonly": true}, "Parameters": {"region": "r3"}}}"#,
        )
        .unwrap();
        for r in [&a, &b] {
            assert_eq!(r.db.as_deref(), Some("D"));
            // The order of `Options` is the JSON map's (sorted or as written, by serde_json's features).
            let mut options = r.options.clone();
            options.sort();
            assert_eq!(options, vec![("request_readonly".into(), "true".into()), ("servertimeout".into(), "0:01:00".into())]);
            assert_eq!(r.parameters, vec![("region".into(), "r3".into())]);
            assert_eq!(r.limits().unwrap().timeout, Duration::from_secs(60));
            assert_eq!(r.engine_properties(), vec![("request_readonly".to_string(), "true".to_string())]);
        }
    }

    #[test]
    fn bad_bodies_are_clear_errors() {
        for body in [&b"[1]"[..], b"{\"db\":\"D\"}", b"not json", b"{\"csl\":\"T\",\"properties\":5}", b"{\"csl\":1}"] {
            let e = RestRequest::from_json(body).unwrap_err();
            assert_eq!(e.status, axum::http::StatusCode::BAD_REQUEST, "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn limits_default_and_override() {
        let r = RestRequest::from_json(br#"{"csl":"T"}"#).unwrap();
        let l = r.limits().unwrap();
        assert_eq!((l.max_records, l.max_size, l.take), (Some(500_000), Some(64 * 1024 * 1024), None));
        let r = RestRequest::from_json(br#"{"csl":"T","properties":{"Options":{"notruncation":true,"query_take_max_records":5}}}"#).unwrap();
        let l = r.limits().unwrap();
        assert_eq!((l.max_records, l.max_size, l.take), (None, None, Some(5)));
        let r = RestRequest::from_json(br#"{"csl":"T","properties":{"Options":{"truncationmaxrecords":"x"}}}"#).unwrap();
        assert!(r.limits().is_err());
    }

    #[test]
    fn timeouts_in_every_spelling() {
        assert_eq!(parse_timeout("00:01:00"), Some(Duration::from_secs(60)));
        assert_eq!(parse_timeout("0:01:00"), Some(Duration::from_secs(60)));
        assert_eq!(parse_timeout("1.00:00:00"), Some(Duration::from_secs(86_400)));
        assert_eq!(parse_timeout("1 day, 0:00:30"), Some(Duration::from_secs(86_430)));
        assert_eq!(parse_timeout("10m"), Some(Duration::from_secs(600)));
        assert_eq!(parse_timeout("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_timeout("soon"), None);
    }
}
