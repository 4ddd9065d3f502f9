//! Postgres's binary `COPY … TO STDOUT (FORMAT binary)` output, read into the read path's rows.
//!
//! Behind a transaction-mode pooler the read cannot keep a named statement, and a simple-protocol
//! query answers in text: every timestamp of every busy block printed by the server and parsed
//! back by the client. Wrapped in `COPY … (FORMAT binary)` the same one-message call answers with
//! the values as the server stores them, which costs next to nothing on either side.

use chrono::{DateTime, NaiveDateTime};

use super::reads::{CalendarRow, LegacyCell};
use crate::error::{Error, Result};

const SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";
/// 2000-01-01T00:00:00Z, Postgres's timestamp epoch, in Unix microseconds.
const PG_EPOCH_US: i64 = 946_684_800_000_000;

fn malformed(what: &str) -> Error {
    Error::Database(format!("the read's binary answer is malformed: {what}"))
}

/// A cursor over one binary COPY answer.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|e| *e <= self.buf.len());
        let end = end.ok_or_else(|| malformed("it ends early"))?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn i16(&mut self) -> Result<i16> {
        Ok(i16::from_be_bytes(self.take(2)?.try_into().expect("2 bytes")))
    }

    fn i32(&mut self) -> Result<i32> {
        Ok(i32::from_be_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }

    /// The next row's fields (`None`: NULL), or `None` after the last row.
    fn row(&mut self) -> Result<Option<Vec<Option<&'a [u8]>>>> {
        let n = self.i16()?;
        if n == -1 {
            return Ok(None);
        }
        let mut fields = Vec::with_capacity(n.max(0) as usize);
        for _ in 0..n {
            let len = self.i32()?;
            fields.push(if len < 0 { None } else { Some(self.take(len as usize)?) });
        }
        Ok(Some(fields))
    }
}

fn int4(b: &[u8]) -> Result<i32> {
    Ok(i32::from_be_bytes(b.try_into().map_err(|_| malformed("int4"))?))
}

fn int8(b: &[u8]) -> Result<i64> {
    Ok(i64::from_be_bytes(b.try_into().map_err(|_| malformed("int8"))?))
}

fn text(b: &[u8]) -> Result<String> {
    String::from_utf8(b.to_vec()).map_err(|_| malformed("text"))
}

fn boolean(b: &[u8]) -> Result<bool> {
    match b {
        [v] => Ok(*v != 0),
        _ => Err(malformed("bool")),
    }
}

fn timestamp(b: &[u8]) -> Result<NaiveDateTime> {
    let us = int8(b)?
        .checked_add(PG_EPOCH_US)
        .ok_or_else(|| malformed("timestamp"))?;
    DateTime::from_timestamp_micros(us)
        .map(|d| d.naive_utc())
        .ok_or_else(|| malformed("timestamp out of range"))
}

/// A one-dimensional `timestamp[]` without NULLs (what `array_agg` of a NOT NULL column gives).
fn timestamps(b: &[u8]) -> Result<Vec<NaiveDateTime>> {
    let mut r = Reader { buf: b, pos: 0 };
    let dims = r.i32()?;
    let _has_nulls = r.i32()?;
    let _element_type = r.i32()?;
    if dims == 0 {
        return Ok(Vec::new());
    }
    if dims != 1 {
        return Err(malformed("a timestamp array of more than one dimension"));
    }
    let len = r.i32()?.max(0) as usize;
    let _lower_bound = r.i32()?;
    let mut out = Vec::with_capacity(len);
    for _ in 0..len {
        match r.i32()? {
            8 => out.push(timestamp(r.take(8)?)?),
            _ => return Err(malformed("a NULL or odd-sized array element")),
        }
    }
    Ok(out)
}

fn opt<T>(f: Option<&[u8]>, decode: impl Fn(&[u8]) -> Result<T>) -> Result<Option<T>> {
    f.map(decode).transpose()
}

fn req<T>(f: Option<&[u8]>, decode: impl Fn(&[u8]) -> Result<T>) -> Result<T> {
    decode(f.ok_or_else(|| malformed("a NULL where a value belongs"))?)
}

/// The read rows of one binary COPY answer of a read function: 18 columns, or 20 with the
/// legacy lookup's two (see `reads::read_columns`).
pub fn read_rows(buf: &[u8]) -> Result<Vec<CalendarRow>> {
    let mut r = Reader { buf, pos: 0 };
    if r.take(SIGNATURE.len())? != SIGNATURE {
        return Err(malformed("no COPY signature"));
    }
    let _flags = r.i32()?;
    let extension = r.i32()?.max(0) as usize;
    r.take(extension)?;
    let mut rows = Vec::new();
    while let Some(f) = r.row()? {
        let legacy = match f.len() {
            18 => false,
            20 => true,
            n => return Err(malformed(&format!("{n} columns"))),
        };
        let tail = if legacy { 18 } else { 16 };
        rows.push(CalendarRow {
            req_id: req(f[0], text)?,
            user_id: req(f[1], int4)?,
            integration: req(f[2], text)?,
            owner_id: req(f[3], text)?,
            channel_id: opt(f[4], text)?,
            channel_expiration: opt(f[5], timestamp)?,
            subscribed_at: opt(f[6], timestamp)?,
            synced_at: opt(f[7], timestamp)?,
            sync_error_at: opt(f[8], timestamp)?,
            window_start: opt(f[9], timestamp)?,
            window_end: opt(f[10], timestamp)?,
            sync_errors: req(f[11], int4)?,
            pending_ms: opt(f[12], int8)?,
            credential_invalid: req(f[13], boolean)?,
            starts: opt(f[14], timestamps)?,
            ends: opt(f[15], timestamps)?,
            legacy: if legacy {
                Some(LegacyCell {
                    found: req(f[16], boolean)?,
                    calendar: opt(f[17], text)?,
                })
            } else {
                None
            },
            replica_lag_ms: opt(f[tail], int8)?,
            snapshot: opt(f[tail + 1], text)?,
        });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(out: &mut Vec<u8>, v: Option<&[u8]>) {
        match v {
            None => out.extend_from_slice(&(-1i32).to_be_bytes()),
            Some(b) => {
                out.extend_from_slice(&(b.len() as i32).to_be_bytes());
                out.extend_from_slice(b);
            }
        }
    }

    fn ts(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap()
    }

    fn ts_bytes(s: &str) -> Vec<u8> {
        (ts(s).and_utc().timestamp_micros() - PG_EPOCH_US)
            .to_be_bytes()
            .to_vec()
    }

    #[test]
    fn a_row_with_nulls_and_timestamp_arrays_reads_back() {
        let mut out = SIGNATURE.to_vec();
        out.extend_from_slice(&0i32.to_be_bytes());
        out.extend_from_slice(&0i32.to_be_bytes());
        out.extend_from_slice(&18i16.to_be_bytes());
        let mut array = Vec::new();
        for v in [1i32, 0, 1114, 2, 1] {
            array.extend_from_slice(&v.to_be_bytes());
        }
        for t in ["2026-12-04 09:00:00", "2026-12-04 10:30:00"] {
            array.extend_from_slice(&8i32.to_be_bytes());
            array.extend_from_slice(&ts_bytes(t));
        }
        let empty: Vec<u8> = [0i32, 0, 1114].iter().flat_map(|v| v.to_be_bytes()).collect();
        let values: Vec<Option<Vec<u8>>> = vec![
            Some(b"cal-1".to_vec()),
            Some(7i32.to_be_bytes().to_vec()),
            Some(b"google_calendar".to_vec()),
            Some(b"cal-0".to_vec()),
            None,
            None,
            Some(ts_bytes("2026-12-01 08:00:00")),
            Some(ts_bytes("1999-12-31 23:59:59")),
            None,
            None,
            None,
            Some(3i32.to_be_bytes().to_vec()),
            Some(1500i64.to_be_bytes().to_vec()),
            Some(vec![1]),
            Some(array),
            Some(empty),
            None,
            Some(b"100:105:101".to_vec()),
        ];
        for v in &values {
            field(&mut out, v.as_deref());
        }
        out.extend_from_slice(&(-1i16).to_be_bytes());
        let rows = read_rows(&out).unwrap();
        assert_eq!(rows.len(), 1);
        let r = &rows[0];
        assert_eq!(
            (r.req_id.as_str(), r.user_id, r.owner_id.as_str()),
            ("cal-1", 7, "cal-0")
        );
        assert_eq!(r.channel_id, None);
        assert_eq!(r.subscribed_at, Some(ts("2026-12-01 08:00:00")));
        assert_eq!(r.synced_at, Some(ts("1999-12-31 23:59:59")), "before Postgres's epoch");
        assert_eq!(
            (r.sync_errors, r.pending_ms, r.credential_invalid),
            (3, Some(1500), true)
        );
        assert_eq!(
            r.starts,
            Some(vec![ts("2026-12-04 09:00:00"), ts("2026-12-04 10:30:00")])
        );
        assert_eq!(r.ends, Some(vec![]));
        assert!(r.legacy.is_none());
        assert_eq!((r.replica_lag_ms, r.snapshot.as_deref()), (None, Some("100:105:101")));
        // Cut short anywhere, it is an error, never a panic.
        for cut in 0..out.len() - 2 {
            assert!(read_rows(&out[..cut]).is_err(), "cut at {cut}");
        }
    }
}
