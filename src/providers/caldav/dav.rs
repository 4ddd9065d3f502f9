//! WebDAV and CalDAV bodies (RFC 4918, 4791, 6578): the requests calsync sends and the
//! multistatus answers it reads. Element names are matched by local name, whatever prefixes the
//! server chose.

use quick_xml::events::Event;
use quick_xml::Reader;

use crate::error::ProviderError;

/// `sync-collection` from `token` (empty: the whole collection), etags only. Sync level 1 (Xandikos
/// requires it to be spelled out).
pub fn sync_collection(token: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?><d:sync-collection xmlns:d="DAV:"><d:sync-token>{}</d:sync-token><d:sync-level>1</d:sync-level><d:prop><d:getetag/></d:prop></d:sync-collection>"#,
        escape(token)
    )
}

/// `calendar-multiget` of these hrefs: their etags and calendar data.
pub fn multiget<'a>(hrefs: impl Iterator<Item = &'a str>) -> String {
    let mut body = String::from(
        r#"<?xml version="1.0" encoding="utf-8"?><c:calendar-multiget xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav"><d:prop><d:getetag/><c:calendar-data/></d:prop>"#,
    );
    for h in hrefs {
        body.push_str("<d:href>");
        body.push_str(&escape(h));
        body.push_str("</d:href>");
    }
    body.push_str("</c:calendar-multiget>");
    body
}

/// A Depth 0 `PROPFIND` of a calendar: its time zone, ctag and sync token.
pub const CALENDAR_PROPS: &str = r#"<?xml version="1.0" encoding="utf-8"?><d:propfind xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav" xmlns:cs="http://calendarserver.org/ns/"><d:prop><c:calendar-timezone/><cs:getctag/><d:sync-token/><d:resourcetype/></d:prop></d:propfind>"#;

fn escape(s: &str) -> String {
    quick_xml::escape::escape(s).into_owned()
}

/// One `response` of a multistatus.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Member {
    pub href: String,
    /// The response's own status (`404`: the member is gone; `507`: on the collection itself, the
    /// listing was truncated). Properties carry theirs in their propstat; only the values of found
    /// properties are kept.
    pub status: Option<u16>,
    pub etag: Option<String>,
    pub calendar_data: Option<String>,
    pub calendar_timezone: Option<String>,
    pub ctag: Option<String>,
    pub sync_token: Option<String>,
}

/// A multistatus answer: its members and the collection's new sync token.
#[derive(Debug, Default)]
pub struct Multistatus {
    pub members: Vec<Member>,
    pub sync_token: Option<String>,
}

fn decode_error() -> ProviderError {
    ProviderError::Decode("a CalDAV answer is not a readable multistatus".into())
}

/// The status code of `HTTP/1.1 404 Not Found`.
fn status_code(line: &str) -> Option<u16> {
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Reads a multistatus body.
pub fn parse_multistatus(body: &[u8]) -> Result<Multistatus, ProviderError> {
    let text = std::str::from_utf8(body).map_err(|_| decode_error())?;
    let mut reader = Reader::from_str(text);
    let mut path: Vec<String> = Vec::new();
    let mut out = Multistatus::default();
    let mut member: Option<Member> = None;
    let mut buf = String::new();
    loop {
        match reader.read_event().map_err(|_| decode_error())? {
            Event::Start(e) => {
                let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                if name == "response" {
                    member = Some(Member::default());
                }
                path.push(name);
                buf.clear();
            }
            Event::Empty(_) => {}
            Event::Text(t) => {
                let piece = t.decode().map_err(|_| decode_error())?;
                let piece = quick_xml::escape::unescape(&piece).map_err(|_| decode_error())?;
                buf.push_str(&piece);
            }
            Event::CData(t) => buf.push_str(&String::from_utf8_lossy(&t)),
            Event::GeneralRef(r) => {
                // An entity or character reference inside text (`&amp;`, `&#13;`).
                let name = String::from_utf8_lossy(&r).into_owned();
                let ch = match name.as_str() {
                    "amp" => Some('&'),
                    "lt" => Some('<'),
                    "gt" => Some('>'),
                    "quot" => Some('"'),
                    "apos" => Some('\''),
                    n => {
                        let num = n.strip_prefix('#');
                        num.and_then(|n| match n.strip_prefix(['x', 'X']) {
                            Some(hex) => u32::from_str_radix(hex, 16).ok(),
                            None => n.parse().ok(),
                        })
                        .and_then(char::from_u32)
                    }
                };
                buf.push(ch.ok_or_else(decode_error)?);
            }
            Event::End(_) => {
                let name = path.pop().unwrap_or_default();
                let parent = path.last().map(String::as_str);
                let value = std::mem::take(&mut buf);
                match (name.as_str(), member.as_mut()) {
                    ("response", Some(_)) => out.members.extend(member.take()),
                    ("href", Some(m)) if parent == Some("response") => m.href = value.trim().to_string(),
                    ("status", Some(m)) if parent == Some("response") => m.status = status_code(&value),
                    ("getetag", Some(m)) => m.etag = Some(value.trim().to_string()).filter(|s| !s.is_empty()),
                    ("calendar-data", Some(m)) => m.calendar_data = Some(value).filter(|s| !s.trim().is_empty()),
                    ("calendar-timezone", Some(m)) => {
                        m.calendar_timezone = Some(value).filter(|s| !s.trim().is_empty())
                    }
                    ("getctag", Some(m)) => m.ctag = Some(value.trim().to_string()).filter(|s| !s.is_empty()),
                    ("sync-token", Some(m)) => m.sync_token = Some(value.trim().to_string()).filter(|s| !s.is_empty()),
                    ("sync-token", None) if parent == Some("multistatus") => {
                        out.sync_token = Some(value.trim().to_string()).filter(|s| !s.is_empty())
                    }
                    _ => {}
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !path.is_empty() {
        return Err(decode_error());
    }
    Ok(out)
}

/// A member's href as a comparable path: an absolute URL's path, percent-decoded, so one server's
/// `/cal/a%40b.ics` and `http://host/cal/a@b.ics` are the same member.
pub fn path_of(href: &str) -> String {
    let path = match reqwest::Url::parse(href) {
        Ok(u) => u.path().to_string(),
        Err(_) => href.to_string(),
    };
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b, ..) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether an error answer names the `valid-sync-token` precondition (RFC 6578 §3.2).
pub fn names_invalid_token(body: &[u8]) -> bool {
    String::from_utf8_lossy(body).contains("valid-sync-token")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_sync_answer_with_deletions_and_entities() {
        let body = br#"<?xml version="1.0"?>
<D:multistatus xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">
 <D:response><D:href>/c/a.ics</D:href><D:propstat><D:prop><D:getetag>"1"</D:getetag>
   <C:calendar-data>BEGIN:VCALENDAR&#13;
SUMMARY:a &amp; b&#13;
END:VCALENDAR</C:calendar-data></D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response>
 <D:response><D:href>/c/gone.ics</D:href><D:status>HTTP/1.1 404 Not Found</D:status></D:response>
 <D:sync-token>http://x/sync/2</D:sync-token>
</D:multistatus>"#;
        let m = parse_multistatus(body).unwrap();
        assert_eq!(m.sync_token.as_deref(), Some("http://x/sync/2"));
        assert_eq!(m.members.len(), 2);
        assert_eq!(m.members[0].etag.as_deref(), Some("\"1\""));
        assert_eq!(m.members[0].status, None, "a found member's status is its propstat's");
        assert!(m.members[0].calendar_data.as_deref().unwrap().contains("a & b\r\n"));
        assert_eq!(m.members[1].status, Some(404));
        assert!(parse_multistatus(b"<d:multistatus xmlns:d='DAV:'><d:response>").is_err());
        assert!(multiget(["/a&b.ics"].into_iter()).contains("/a&amp;b.ics"));
    }
}
