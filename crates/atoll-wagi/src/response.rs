//! A CGI program's stdout, read as RFC 3875 (section 6) defines it: header
//! lines, a blank line, then the body.
//!
//! Parsing is strict, because a lenient reader turns a program's bug into a
//! response nobody can explain: every line before the blank one must be
//! `Name: value` with a valid HTTP name and value (lines may end in `\n` or
//! `\r\n`; folded continuation lines are refused), the block must hold at
//! least one of `Content-Type`, `Location` and `Status`, and each of those
//! three at most once. `Status: 404 Not Found` sets the status (the reason
//! phrase is dropped); a `Location` without a `Status` means 302. Headers
//! that frame the message or concern the connection (`Content-Length`,
//! `Transfer-Encoding`, `Connection`, ...) are dropped: the server writes
//! those itself, and CGI programs commonly print `Content-Length`.

use atoll_caps::ResponseParts;
use http::{HeaderName, HeaderValue};

/// The header block of a CGI response, checked.
#[derive(Debug, PartialEq, Eq)]
pub struct CgiHead {
    /// From `Status`, or 302 for a `Location` without one.
    pub status: Option<u16>,
    /// Every other header, in order, host-only ones removed.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Where the body starts in the output.
    pub body_start: usize,
}

/// Reads the header block at the start of `out`. The error says what is
/// wrong and where, for a message that starts with the function's name.
pub fn parse(out: &[u8]) -> Result<CgiHead, String> {
    if out.is_empty() {
        return Err(
            "wrote nothing to stdout; a CGI program prints headers (at least one of Content-Type, Location or Status), a blank line, then the body".into(),
        );
    }
    let mut status: Option<u16> = None;
    let mut location = false;
    let mut content_type = false;
    let mut headers = Vec::new();
    let mut pos = 0;
    let mut line_no = 0;
    loop {
        let Some(len) = out[pos..].iter().position(|&b| b == b'\n') else {
            let rest = &out[pos..];
            let rest = rest.strip_suffix(b"\r").unwrap_or(rest);
            return Err(if line_no == 0 && (rest.is_empty() || parse_line(rest).is_err()) {
                no_header_block(out)
            } else {
                "its CGI header block is not closed by a blank line (the output ends before one)".to_string()
            });
        };
        let mut line = &out[pos..pos + len];
        pos += len + 1;
        line_no += 1;
        if let Some(stripped) = line.strip_suffix(b"\r") {
            line = stripped;
        }
        if line.is_empty() {
            break;
        }
        let field = parse_line(line).map_err(|why| {
            if line_no == 1 {
                no_header_block(out)
            } else {
                format!("line {line_no} of its CGI header block, \"{}\", {why}", shown(line))
            }
        })?;
        let (name, value) = field;
        let repeated = |what: &str| format!("line {line_no} of its CGI header block: {what} appears twice");
        match name.as_str() {
            "status" => {
                if status.is_some() {
                    return Err(repeated("Status"));
                }
                status =
                    Some(parse_status(&value).map_err(|e| format!("line {line_no} of its CGI header block: {e}"))?);
            }
            "location" => {
                if location {
                    return Err(repeated("Location"));
                }
                location = true;
                headers.push((name, value));
            }
            "content-type" => {
                if content_type {
                    return Err(repeated("Content-Type"));
                }
                content_type = true;
                headers.push((name, value));
            }
            _ if ResponseParts::is_host_only(&name) => {
                tracing::debug!(header = %name, "dropped a framing header from a CGI response");
            }
            _ => headers.push((name, value)),
        }
    }
    if status.is_none() && !location && !content_type {
        return Err(
            "its CGI header block has none of Content-Type, Location or Status; a CGI response needs at least one"
                .into(),
        );
    }
    if location && status.is_none() {
        status = Some(302);
    }
    Ok(CgiHead {
        status,
        headers,
        body_start: pos,
    })
}

fn parse_line(line: &[u8]) -> Result<(HeaderName, HeaderValue), String> {
    if line[0] == b' ' || line[0] == b'\t' {
        return Err("starts with white space (folded header lines are not accepted)".into());
    }
    let colon = line
        .iter()
        .position(|&b| b == b':')
        .ok_or_else(|| "is not `Name: value`".to_string())?;
    let name = HeaderName::from_bytes(&line[..colon]).map_err(|_| {
        format!(
            "does not start with a valid header name (\"{}\")",
            shown(&line[..colon])
        )
    })?;
    let value = line[colon + 1..].trim_ascii();
    let value = HeaderValue::from_bytes(value).map_err(|_| format!("has an invalid value for \"{name}\""))?;
    Ok((name, value))
}

/// `404`, `404 Not Found`: three digits, 100 to 999, as `response.set_status`.
fn parse_status(value: &HeaderValue) -> Result<u16, String> {
    let text = String::from_utf8_lossy(value.as_bytes());
    let code = text.split_once(' ').map_or(&*text, |(c, _)| c);
    match code.parse::<u16>() {
        Ok(c) if code.len() == 3 && (100..=999).contains(&c) => Ok(c),
        _ => Err(format!(
            "Status \"{text}\" does not start with a three-digit status code"
        )),
    }
}

fn no_header_block(out: &[u8]) -> String {
    let first = out.split(|&b| b == b'\n').next().unwrap_or_default();
    format!(
        "wrote no CGI header block: its output starts with \"{}\" instead of headers such as `Content-Type: text/plain` followed by a blank line",
        shown(first.strip_suffix(b"\r").unwrap_or(first))
    )
}

/// A line as it can be shown in a message: escaped and at most 80 characters.
fn shown(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out: String = text.chars().take(80).collect::<String>().escape_debug().to_string();
    if text.chars().count() > 80 {
        out.push_str("...");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(out: &str) -> CgiHead {
        parse(out.as_bytes()).unwrap_or_else(|e| panic!("{out:?}: {e}"))
    }

    fn err(out: &str) -> String {
        parse(out.as_bytes()).expect_err(out)
    }

    #[test]
    fn reads_headers_status_and_body() {
        let out = "Content-Type: text/plain\r\nStatus: 201 Created\r\nX-One:  a \r\nX-One: b\r\nContent-Length: 3\r\n\r\nbody";
        let head = ok(out);
        assert_eq!(head.status, Some(201));
        let names: Vec<_> = head
            .headers
            .iter()
            .map(|(n, v)| format!("{n}={}", v.to_str().unwrap()))
            .collect();
        assert_eq!(names, ["content-type=text/plain", "x-one=a", "x-one=b"]);
        assert_eq!(&out[head.body_start..], "body");
        assert_eq!(ok("Content-Type: text/html\n\n").body_start, 25);
    }

    #[test]
    fn location_without_status_is_a_302() {
        assert_eq!(ok("Location: /elsewhere\n\n").status, Some(302));
        assert_eq!(ok("Location: /x\nStatus: 301\n\n").status, Some(301));
        assert_eq!(ok("Status: 307\nLocation: /x\n\n").status, Some(307));
    }

    #[test]
    fn refuses_what_is_not_a_cgi_response() {
        assert!(err("").contains("wrote nothing to stdout"));
        assert!(err("Hello, world!\n").contains("wrote no CGI header block: its output starts with \"Hello, world!\""));
        assert!(err("<html>\n\n").contains("wrote no CGI header block"));
        assert!(
            err("Content-Type: text/plain\nthis is garbage\n\nbody")
                .contains("line 2 of its CGI header block, \"this is garbage\", is not `Name: value`")
        );
        assert!(err("Content-Type: text/plain\n folded\n\n").contains("folded"));
        assert!(err("Content-Type: text/plain\nBad Name: x\n\n").contains("valid header name"));
        assert!(err("Content-Type: text/plain").contains("not closed by a blank line"));
        assert!(err("X-Only: 1\n\n").contains("none of Content-Type, Location or Status"));
        assert!(err("Status: abc\n\n").contains("three-digit"));
        assert!(err("Status: 42\n\n").contains("three-digit"));
        assert!(err("Status: 200\nStatus: 404\n\n").contains("Status appears twice"));
        assert!(err("Content-Type: a\ncontent-type: b\n\n").contains("Content-Type appears twice"));
    }
}
