//! A small FHIR R5 server for Patient resources, the demo's `coruscanthealth`.
//!
//! It serves `PUT`, `GET` and `HEAD` on `/intersystems/fhir/r5/Patient/{id}`
//! with `application/fhir+json`, keeps resources in memory, answers `404`
//! with an `OperationOutcome` for unknown patients and paths, `405` for other
//! methods, and, when it requires a SMART-style bearer token, `401` to
//! requests without one (the seed story's identity-provider outage). Each
//! connection is served on its own thread and closed after one response.

use std::{
    collections::HashMap,
    io::{self, Read, Write},
    net::{TcpListener, TcpStream},
    sync::{Arc, Mutex},
    time::Duration,
};

/// The FHIR base path of the demo server.
pub const FHIR_BASE: &str = "/intersystems/fhir/r5";

/// Largest request (head and body) the server reads.
const MAX_REQUEST: usize = 1 << 20;

/// Patients by id.
type Store = Arc<Mutex<HashMap<String, String>>>;

/// A response: status, reason, body (JSON) and extra headers.
#[derive(Debug, PartialEq, Eq)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// Reason phrase.
    pub reason: &'static str,
    /// Body (omitted on the wire for HEAD).
    pub body: String,
    /// Extra headers.
    pub headers: Vec<(&'static str, String)>,
}

fn outcome(status: u16, reason: &'static str, code: &str, text: &str) -> Response {
    Response {
        status,
        reason,
        body: format!(
            "{{\"resourceType\":\"OperationOutcome\",\"issue\":[{{\"severity\":\"error\",\"code\":\"{code}\",\"diagnostics\":\"{text}\"}}]}}"
        ),
        headers: Vec::new(),
    }
}

/// Decides the response to one request (pure, so it is tested directly).
pub fn respond(
    store: &Mutex<HashMap<String, String>>,
    require_token: bool,
    method: &str,
    path: &str,
    authorization: Option<&str>,
    body: &[u8],
) -> Response {
    let path = path.split('?').next().unwrap_or_default();
    let Some(id) = path
        .strip_prefix(FHIR_BASE)
        .and_then(|p| p.strip_prefix("/Patient/"))
        .filter(|id| {
            !id.is_empty()
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        })
    else {
        return outcome(404, "Not Found", "not-found", "no such resource");
    };
    if require_token && !authorization.is_some_and(|a| a.starts_with("Bearer ") && a.len() > 7) {
        let mut r = outcome(
            401,
            "Unauthorized",
            "login",
            "a SMART bearer token is required",
        );
        r.headers.push(("WWW-Authenticate", "Bearer".to_string()));
        return r;
    }
    let mut patients = store
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    match method {
        "GET" | "HEAD" => match patients.get(id) {
            Some(resource) => Response {
                status: 200,
                reason: "OK",
                body: resource.clone(),
                headers: Vec::new(),
            },
            None => outcome(
                404,
                "Not Found",
                "not-found",
                &format!("Patient/{id} is not known"),
            ),
        },
        "PUT" => {
            let Ok(text) = std::str::from_utf8(body) else {
                return outcome(400, "Bad Request", "invalid", "the body is not UTF-8");
            };
            if !text.contains("\"resourceType\"") || !text.contains("Patient") {
                return outcome(
                    400,
                    "Bad Request",
                    "invalid",
                    "the body is not a Patient resource",
                );
            }
            let created = patients.insert(id.to_string(), text.to_string()).is_none();
            Response {
                status: if created { 201 } else { 200 },
                reason: if created { "Created" } else { "OK" },
                body: text.to_string(),
                headers: vec![("Location", format!("{FHIR_BASE}/Patient/{id}/_history/1"))],
            }
        }
        _ => outcome(
            405,
            "Method Not Allowed",
            "not-supported",
            "only GET, HEAD and PUT",
        ),
    }
}

/// Whether the server requires a bearer token: fixed, or while a file
/// exists (the demo's identity-provider outage is a file it creates).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenMode {
    /// Never.
    Open,
    /// Always.
    Required,
    /// While this file exists.
    WhileFileExists(std::path::PathBuf),
}

impl TokenMode {
    fn required(&self) -> bool {
        match self {
            Self::Open => false,
            Self::Required => true,
            Self::WhileFileExists(path) => path.exists(),
        }
    }
}

fn handle(mut stream: TcpStream, store: &Store, require_token: bool) -> io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    let (method, path, auth, head_len, content_length) = loop {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.len() > MAX_REQUEST {
            return Ok(());
        }
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&buf) {
            Ok(httparse::Status::Complete(len)) => {
                let header = |name: &str| {
                    req.headers
                        .iter()
                        .find(|h| h.name.eq_ignore_ascii_case(name))
                        .and_then(|h| std::str::from_utf8(h.value).ok())
                        .map(str::to_string)
                };
                let content_length = header("content-length")
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .unwrap_or(0)
                    .min(MAX_REQUEST);
                break (
                    req.method.unwrap_or_default().to_string(),
                    req.path.unwrap_or_default().to_string(),
                    header("authorization"),
                    len,
                    content_length,
                );
            }
            Ok(httparse::Status::Partial) => {}
            Err(_) => {
                let r = outcome(400, "Bad Request", "structure", "malformed request");
                return write_response(&mut stream, &r, false);
            }
        }
    };
    while buf.len() < head_len + content_length {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let end = (head_len + content_length).min(buf.len());
    let response = respond(
        store,
        require_token,
        &method,
        &path,
        auth.as_deref(),
        &buf[head_len..end],
    );
    write_response(&mut stream, &response, method == "HEAD")
}

fn write_response(stream: &mut TcpStream, r: &Response, head: bool) -> io::Result<()> {
    let mut out = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: application/fhir+json\r\nContent-Length: {}\r\nConnection: close\r\n",
        r.status,
        r.reason,
        r.body.len()
    );
    for (name, value) in &r.headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("\r\n");
    if !head {
        out.push_str(&r.body);
    }
    stream.write_all(out.as_bytes())?;
    stream.flush()
}

/// Serves until the listener fails.
pub fn serve(listener: TcpListener, tokens: TokenMode) -> io::Result<()> {
    let store: Store = Arc::default();
    for stream in listener.incoming() {
        let stream = stream?;
        let store = Arc::clone(&store);
        let require_token = tokens.required();
        std::thread::spawn(move || {
            if let Err(err) = handle(stream, &store, require_token) {
                log::debug!("FHIR connection: {err}");
            }
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const VADER: &str =
        r#"{"resourceType":"Patient","id":"DarthVader","name":[{"family":"Vader"}]}"#;
    const PATH: &str = "/intersystems/fhir/r5/Patient/DarthVader";

    #[test]
    fn put_then_get_and_head() {
        let store = Mutex::default();
        let r = respond(&store, false, "PUT", PATH, None, VADER.as_bytes());
        assert_eq!(r.status, 201);
        assert_eq!(
            respond(&store, false, "PUT", PATH, None, VADER.as_bytes()).status,
            200
        );
        let r = respond(&store, false, "GET", PATH, None, b"");
        assert_eq!((r.status, r.body.as_str()), (200, VADER));
        assert_eq!(respond(&store, false, "HEAD", PATH, None, b"").status, 200);
    }

    #[test]
    fn unknown_patients_and_paths_are_404_operation_outcomes() {
        let store = Mutex::default();
        let r = respond(
            &store,
            false,
            "GET",
            "/intersystems/fhir/r5/Patient/Anakin",
            None,
            b"",
        );
        assert_eq!(r.status, 404);
        assert!(r.body.contains("OperationOutcome"));
        assert_eq!(
            respond(&store, false, "GET", "/other", None, b"").status,
            404
        );
        assert_eq!(
            respond(&store, false, "DELETE", PATH, None, b"").status,
            405
        );
        assert_eq!(
            respond(&store, false, "PUT", PATH, None, b"not a patient").status,
            400
        );
    }

    #[test]
    fn a_token_is_required_when_the_server_asks_for_one() {
        let store = Mutex::default();
        assert_eq!(respond(&store, true, "GET", PATH, None, b"").status, 401);
        assert_eq!(
            respond(&store, true, "GET", PATH, Some("Bearer abc"), b"").status,
            404
        );
    }

    #[test]
    fn serves_real_http_over_a_socket() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || serve(listener, TokenMode::Open));
        let send = |req: String| {
            let mut s = TcpStream::connect(addr).unwrap();
            s.write_all(req.as_bytes()).unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).unwrap();
            out
        };
        let put = send(format!(
            "PUT {PATH} HTTP/1.1\r\nHost: x\r\nContent-Type: application/fhir+json\r\nContent-Length: {}\r\n\r\n{VADER}",
            VADER.len()
        ));
        assert!(put.starts_with("HTTP/1.1 201 Created\r\n"), "{put}");
        let get = send(format!("GET {PATH} HTTP/1.1\r\nHost: x\r\n\r\n"));
        assert!(
            get.starts_with("HTTP/1.1 200 OK\r\n") && get.ends_with(VADER),
            "{get}"
        );
        let head = send(format!("HEAD {PATH} HTTP/1.1\r\nHost: x\r\n\r\n"));
        assert!(head.ends_with("\r\n\r\n"), "HEAD has no body: {head}");
    }
}
