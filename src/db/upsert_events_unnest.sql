SELECT u.id, $1, u.ext, u.etag, u.uid, u.seq, u.summary, u.description, u.location,
       u.s, u.e, u.all_day, u.tz, u.status::"CalendarCacheEventStatus", u.recurring, u.original, $2, $2,
       u.created, u.updated
FROM UNNEST($3::text[], $4::text[], $5::text[], $6::text[], $7::int4[], $8::text[], $9::text[], $10::text[],
            $11::timestamp[], $12::timestamp[], $13::bool[], $14::text[], $15::text[], $16::text[],
            $17::timestamp[], $18::timestamp[], $19::timestamp[])
     AS u(id, ext, etag, uid, seq, summary, description, location, s, e, all_day, tz,
          status, recurring, original, created, updated)
