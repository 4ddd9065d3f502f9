//! The iCalendar text format (RFC 5545) as calsync reads it: lines unfolded, content lines split
//! into name, parameters (quotes honoured) and value, components nested; DATE and DATE-TIME
//! values, durations and UTC offsets. What the values mean is `ical`'s business.

use chrono::{NaiveDate, NaiveDateTime};
use chrono_tz::Tz;

use crate::model::Unreadable;

/// A content line: upper-cased name and parameter names, the raw value.
#[derive(Debug, Clone)]
pub(super) struct Prop {
    pub(super) name: String,
    pub(super) params: Vec<(String, String)>,
    pub(super) value: String,
}

impl Prop {
    pub(super) fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// A component and what it holds.
#[derive(Debug, Default)]
pub(super) struct Component {
    pub(super) name: String,
    pub(super) props: Vec<Prop>,
    pub(super) children: Vec<Component>,
}

impl Component {
    pub(super) fn prop(&self, name: &str) -> Option<&Prop> {
        self.props.iter().find(|p| p.name == name)
    }

    pub(super) fn props<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Prop> + 'a {
        self.props.iter().filter(move |p| p.name == name)
    }

    pub(super) fn text(&self, name: &str) -> Option<String> {
        self.prop(name).map(|p| unescape(&p.value))
    }
}

pub(super) fn unescape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n' | 'N') => out.push('\n'),
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

/// Unfolds and parses the resource into its top-level component.
pub(super) fn parse(text: &str) -> Result<Component, Unreadable> {
    let mut lines: Vec<String> = Vec::new();
    for raw in text.split('\n') {
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        if let Some(rest) = raw.strip_prefix([' ', '\t']) {
            match lines.last_mut() {
                Some(last) => last.push_str(rest),
                None => return Err(Unreadable("a CalDAV object starts with a continuation line")),
            }
        } else if !raw.is_empty() {
            lines.push(raw.to_string());
        }
    }
    let mut stack: Vec<Component> = vec![Component::default()];
    for line in &lines {
        let prop = content_line(line)?;
        match prop.name.as_str() {
            "BEGIN" => stack.push(Component {
                name: prop.value.to_ascii_uppercase(),
                ..Default::default()
            }),
            "END" => {
                let done = stack.pop().filter(|c| c.name.eq_ignore_ascii_case(&prop.value));
                match (done, stack.last_mut()) {
                    (Some(c), Some(parent)) => parent.children.push(c),
                    _ => return Err(Unreadable("a CalDAV object has unbalanced BEGIN/END lines")),
                }
            }
            _ => {
                let depth = stack.len();
                match stack.last_mut() {
                    Some(c) if depth > 1 => c.props.push(prop),
                    _ => return Err(Unreadable("a CalDAV object has a property outside any component")),
                }
            }
        }
    }
    let mut root = stack
        .pop()
        .filter(|_| stack.is_empty())
        .ok_or(Unreadable("a CalDAV object is not closed"))?;
    match root.children.pop() {
        Some(cal) if cal.name == "VCALENDAR" && root.children.is_empty() => Ok(cal),
        _ => Err(Unreadable("a CalDAV object is not one VCALENDAR")),
    }
}

/// `NAME;P1=V1;P2="V;2":VALUE`, quotes honoured.
pub(super) fn content_line(line: &str) -> Result<Prop, Unreadable> {
    let bad = Unreadable("a CalDAV object has a malformed content line");
    let mut quoted = false;
    let mut colon = None;
    let mut cuts = Vec::new();
    for (i, c) in line.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ';' if !quoted => cuts.push(i),
            ':' if !quoted => {
                colon = Some(i);
                break;
            }
            _ => {}
        }
    }
    let colon = colon.ok_or(bad)?;
    let head = &line[..colon];
    let mut parts = Vec::new();
    let mut start = 0;
    for cut in cuts {
        parts.push(&head[start..cut]);
        start = cut + 1;
    }
    parts.push(&head[start..]);
    let name = parts[0].trim().to_ascii_uppercase();
    if name.is_empty() {
        return Err(bad);
    }
    let params = parts[1..]
        .iter()
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.trim().to_ascii_uppercase(), v.trim_matches('"').to_string()))
        .collect();
    Ok(Prop {
        name,
        params,
        value: line[colon + 1..].to_string(),
    })
}

/// A DATE or DATE-TIME value as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum When {
    Date(NaiveDate),
    /// A local time, floating or in a named zone (resolved by the caller).
    Local(NaiveDateTime),
    Utc(NaiveDateTime),
}

pub(super) fn when(value: &str) -> Result<When, Unreadable> {
    let bad = Unreadable("a CalDAV event has an unreadable date or time");
    let v = value.trim();
    if v.len() == 8 {
        return NaiveDate::parse_from_str(v, "%Y%m%d").map(When::Date).map_err(|_| bad);
    }
    let (body, utc) = match v.strip_suffix(['Z', 'z']) {
        Some(b) => (b, true),
        None => (v, false),
    };
    let t = NaiveDateTime::parse_from_str(body, "%Y%m%dT%H%M%S").map_err(|_| bad)?;
    Ok(if utc { When::Utc(t) } else { When::Local(t) })
}

/// A `VTIMEZONE` whose every observance has one offset, as the `Etc/GMT` zone of that offset.
pub(super) fn fixed_zone(vtz: &Component) -> Option<Tz> {
    let mut offsets = vtz
        .children
        .iter()
        .filter_map(|o| o.prop("TZOFFSETTO"))
        .map(|p| offset_seconds(&p.value));
    let first = offsets.next()??;
    if !offsets.all(|o| o == Some(first)) || first % 3600 != 0 {
        return None;
    }
    let hours = first / 3600;
    // `Etc/GMT+5` is five hours *behind* UTC.
    let name = match hours {
        0 => "Etc/UTC".to_string(),
        h if h > 0 => format!("Etc/GMT-{h}"),
        h => format!("Etc/GMT+{}", -h),
    };
    name.parse().ok()
}

pub(super) fn offset_seconds(v: &str) -> Option<i32> {
    let v = v.trim();
    let (sign, rest) = match v.as_bytes().first()? {
        b'+' => (1, &v[1..]),
        b'-' => (-1, &v[1..]),
        _ => return None,
    };
    if !(rest.len() == 4 || rest.len() == 6) || !rest.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n = |r: std::ops::Range<usize>| rest[r].parse::<i32>().ok();
    let secs = n(0..2)? * 3600 + n(2..4)? * 60 + if rest.len() == 6 { n(4..6)? } else { 0 };
    Some(sign * secs)
}

/// An iCalendar duration: nominal days (weeks and days, wall-clock) and exact seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct Span {
    pub(super) days: i64,
    pub(super) seconds: i64,
}

pub(super) fn span(v: &str) -> Result<Span, Unreadable> {
    let bad = Unreadable("a CalDAV event has an unreadable duration");
    let v = v.trim();
    let (sign, v) = match v.strip_prefix('-') {
        Some(r) => (-1, r),
        None => (1, v.strip_prefix('+').unwrap_or(v)),
    };
    let v = v.strip_prefix('P').ok_or(bad)?;
    let (mut s, mut in_time, mut num) = (Span::default(), false, String::new());
    for c in v.chars() {
        match c {
            'T' => in_time = true,
            '0'..='9' => num.push(c),
            _ => {
                let n: i64 = num.parse().map_err(|_| bad)?;
                num.clear();
                match (c, in_time) {
                    ('W', false) => s.days += 7 * n,
                    ('D', false) => s.days += n,
                    ('H', true) => s.seconds += 3600 * n,
                    ('M', true) => s.seconds += 60 * n,
                    ('S', true) => s.seconds += n,
                    _ => return Err(bad),
                }
            }
        }
    }
    if !num.is_empty() {
        return Err(bad);
    }
    Ok(Span {
        days: sign * s.days,
        seconds: sign * s.seconds,
    })
}
