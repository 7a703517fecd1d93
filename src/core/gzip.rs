//! `Content-Encoding: gzip` for event streams: whether a request accepts it
//! (its `Accept-Encoding` header), and the compressor a stream keeps for
//! its whole life.
//!
//! Bytes enter as the events of a batch and leave as gzip data that the
//! client can decode up to the batch's last byte: after every batch the
//! compressor does a sync flush, which ends the compressed data on a byte
//! boundary with an empty stored block, so no event waits inside the
//! compressor for the next one to push it out. That costs a few bytes per
//! batch (the empty block and the start of a new one) and is what makes
//! gzip usable for a live stream at all. When the stream ends, the gzip
//! member is ended properly: its last block, then the CRC-32 and length
//! trailer.
//!
//! Memory is why this is zlib called directly and not through flate2. A
//! compressor keeps a window of recent input to find repeats in, and hash
//! tables to find them quickly; zlib's defaults (a 32 KiB window,
//! `memLevel` 8) cost about 256 KiB per stream once the window has filled,
//! 2.5 GB at 10,000 streams. flate2 always asks for `memLevel` 8, and its
//! pure-Rust backends have tables of a fixed size (zlib-rs keeps a 128 KiB
//! hash head per stream, and measured 188 KiB per compressor even with a
//! 512-byte window). zlib itself takes both sizes as parameters: with a
//! 2 KiB window and `memLevel` 2 a compressor costs about 16 KiB
//! (`(1 << (windowBits + 2)) + (1 << (memLevel + 9))` bytes, 10 KiB, plus
//! zlib's 6 KiB of state); 16 to 19 KiB more RSS per stream was measured
//! (BENCHMARKS.md, "Compression"). Messages of a few hundred bytes to a
//! few KiB still find the repeats they share with the last ones (field
//! names, IDs, the `data:` prefixes), which is most of what gzip can win
//! on them.

#[cfg(feature = "gzip")]
pub(crate) use zlib::Gzip;

#[cfg(not(feature = "gzip"))]
pub(crate) use without_zlib::Gzip;

/// The compressor, on zlib (the `gzip` feature).
#[cfg(feature = "gzip")]
#[allow(unsafe_code)]
mod zlib {
    use std::ffi::c_int;
    use std::io;
    use std::ptr;

    use libz_sys as zlib;

    /// zlib's compression level: 1, the fastest. Every subscriber compresses
    /// every message it gets, so a broadcast pays this once per recipient;
    /// level 6 made JSON messages of 1 KiB a fifth smaller again (216 bytes
    /// instead of 263) for 60% more CPU (BENCHMARKS.md).
    const LEVEL: c_int = 1;

    /// log2 of the window: 2 KiB of recent input to find repeats in.
    const WINDOW_BITS: c_int = 11;

    /// zlib's `windowBits` plus 16 asks for a gzip header and trailer instead
    /// of zlib's.
    const GZIP_WRAPPER: c_int = 16;

    /// Hash table and symbol buffer sizes: 512 hash heads and 256 symbols per
    /// block, 2 KiB in all.
    const MEM_LEVEL: c_int = 2;

    /// Most input bytes handed to zlib in one call (its counters are 32-bit).
    const MAX_INPUT: usize = 1 << 30;

    /// One stream's gzip compressor: see the module docs.
    pub(crate) struct Gzip {
        /// Boxed because zlib's state points back at it: it must not move.
        stream: Box<zlib::z_stream>,
    }

    // SAFETY: the z_stream and the state it owns are used only through
    // `&mut self`, and zlib keeps nothing tied to the thread that made them.
    unsafe impl Send for Gzip {}

    impl Gzip {
        /// A compressor whose first output starts a gzip member.
        ///
        /// # Errors
        ///
        /// `OutOfMemory` if zlib cannot allocate its state.
        pub(crate) fn new() -> io::Result<Gzip> {
            let mut stream = Box::new(zlib::z_stream {
                next_in: ptr::null_mut(),
                avail_in: 0,
                total_in: 0,
                next_out: ptr::null_mut(),
                avail_out: 0,
                total_out: 0,
                msg: ptr::null_mut(),
                state: ptr::null_mut(),
                zalloc,
                zfree,
                opaque: ptr::null_mut(),
                data_type: 0,
                adler: 0,
                reserved: 0,
            });
            let size = c_int::try_from(size_of::<zlib::z_stream>()).unwrap_or(c_int::MAX);
            // SAFETY: `stream` is a valid z_stream with allocation functions,
            // at the address it keeps; the version and size tell zlib which
            // layout we were built against.
            let rc = unsafe {
                zlib::deflateInit2_(
                    &mut *stream,
                    LEVEL,
                    zlib::Z_DEFLATED,
                    WINDOW_BITS + GZIP_WRAPPER,
                    MEM_LEVEL,
                    zlib::Z_DEFAULT_STRATEGY,
                    zlib::zlibVersion(),
                    size,
                )
            };
            if rc != zlib::Z_OK {
                // Nothing was allocated: there is nothing to end.
                return Err(io::Error::new(
                    io::ErrorKind::OutOfMemory,
                    format!("zlib could not start a gzip stream (deflateInit2: {rc})"),
                ));
            }
            Ok(Gzip { stream })
        }

        /// Compresses `input`, appending to `out` whatever output is ready; the
        /// rest waits in the compressor for more input or a flush.
        pub(crate) fn push(&mut self, input: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
            self.deflate(input, out, zlib::Z_NO_FLUSH)
        }

        /// Appends everything pushed so far to `out`, ending on a byte boundary
        /// (a sync flush), so the client can decode all of it now.
        pub(crate) fn flush(&mut self, out: &mut Vec<u8>) -> io::Result<()> {
            self.deflate(&[], out, zlib::Z_SYNC_FLUSH)
        }

        /// Appends the end of the gzip member to `out`: anything still pushed,
        /// the last block, and the trailer. Nothing may be pushed after it.
        pub(crate) fn finish(&mut self, out: &mut Vec<u8>) -> io::Result<()> {
            self.deflate(&[], out, zlib::Z_FINISH)
        }

        fn deflate(&mut self, mut input: &[u8], out: &mut Vec<u8>, flush: c_int) -> io::Result<()> {
            loop {
                let take = input.len().min(MAX_INPUT);
                let more_input = take < input.len();
                // Room for the worst case (input that does not compress: stored
                // blocks of it, five bytes of header each, and the flush), so
                // one call nearly always does.
                out.reserve(take + take / 1024 + 64);
                let spare = out.spare_capacity_mut();
                let room = spare.len().min(MAX_INPUT);
                let stream = &mut *self.stream;
                // zlib only reads through `next_in`.
                stream.next_in = input.as_ptr().cast_mut();
                stream.avail_in = zlib::uInt::try_from(take).unwrap_or(zlib::uInt::MAX);
                stream.next_out = spare.as_mut_ptr().cast();
                stream.avail_out = zlib::uInt::try_from(room).unwrap_or(zlib::uInt::MAX);
                let step = if more_input { zlib::Z_NO_FLUSH } else { flush };
                // SAFETY: the stream was initialised in `new` and is ended only
                // in `drop`; `next_in` points at `take` readable bytes and
                // `next_out` at `room` writable ones, both live for the call.
                let rc = unsafe { zlib::deflate(stream, step) };
                let consumed = take - stream.avail_in as usize;
                let written = room - stream.avail_out as usize;
                let output_full = stream.avail_out == 0;
                stream.next_in = ptr::null_mut();
                stream.next_out = ptr::null_mut();
                // SAFETY: zlib wrote `written` bytes into the spare capacity.
                unsafe { out.set_len(out.len() + written) };
                input = &input[consumed..];
                match rc {
                    zlib::Z_STREAM_END => return Ok(()),
                    // No progress was possible: only when there was nothing to
                    // do, which a loop that stops in time never asks for.
                    zlib::Z_OK | zlib::Z_BUF_ERROR => {}
                    _ => {
                        return Err(io::Error::other(format!(
                            "gzip compression failed (deflate: {rc})"
                        )));
                    }
                }
                let done = input.is_empty() && !output_full && flush != zlib::Z_FINISH;
                if done {
                    return Ok(());
                }
                if rc == zlib::Z_BUF_ERROR && input.is_empty() && !output_full {
                    return Err(io::Error::other("gzip compression made no progress"));
                }
            }
        }
    }

    impl Drop for Gzip {
        fn drop(&mut self) {
            // SAFETY: initialised in `new`, ended once, here.
            unsafe { zlib::deflateEnd(&mut *self.stream) };
        }
    }

    /// zlib's own default allocator, which a Rust z_stream must name: a
    /// function pointer cannot be null in Rust.
    unsafe extern "C" fn zalloc(
        _opaque: zlib::voidpf,
        items: zlib::uInt,
        size: zlib::uInt,
    ) -> zlib::voidpf {
        // SAFETY: calloc with sizes from zlib; NULL on failure, which zlib
        // handles.
        unsafe { libc::calloc(items as usize, size as usize) }
    }

    unsafe extern "C" fn zfree(_opaque: zlib::voidpf, address: zlib::voidpf) {
        // SAFETY: `address` came from `zalloc`.
        unsafe { libc::free(address) }
    }
}

/// Without the `gzip` feature: no stream is ever compressed, and a
/// compressor cannot be made.
#[cfg(not(feature = "gzip"))]
mod without_zlib {
    use std::io;

    /// A compressor that cannot exist.
    pub(crate) enum Gzip {}

    impl Gzip {
        pub(crate) fn new() -> io::Result<Gzip> {
            Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "sse-hub was built without its gzip feature",
            ))
        }

        pub(crate) fn push(&mut self, _: &[u8], _: &mut Vec<u8>) -> io::Result<()> {
            match *self {}
        }

        pub(crate) fn flush(&mut self, _: &mut Vec<u8>) -> io::Result<()> {
            match *self {}
        }

        pub(crate) fn finish(&mut self, _: &mut Vec<u8>) -> io::Result<()> {
            match *self {}
        }
    }
}

/// True if `accept_encoding`, the value of a request's `Accept-Encoding`
/// header, accepts gzip (RFC 9110, section 12.5.3): `gzip` (or its old
/// name `x-gzip`) with a weight above 0, or, if gzip is not named, `*` with
/// one. `gzip;q=0` refuses it, even after a `*`. Names and `q` are
/// case-insensitive. A weight that does not parse counts as a refusal: a
/// plain stream is never wrong.
pub(crate) fn accepts_gzip(accept_encoding: &str) -> bool {
    let mut gzip: Option<bool> = None;
    let mut any: Option<bool> = None;
    for element in accept_encoding.split(',') {
        let mut parts = element.split(';');
        let coding = parts.next().unwrap_or_default().trim();
        let mut accepted = true;
        for parameter in parts {
            let (name, value) = parameter.split_once('=').unwrap_or((parameter, ""));
            if name.trim().eq_ignore_ascii_case("q") {
                accepted = weight_above_zero(value.trim()).unwrap_or(false);
            }
        }
        let slot = if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
            &mut gzip
        } else if coding == "*" {
            &mut any
        } else {
            continue;
        };
        // Named twice: both must accept.
        *slot = Some(slot.unwrap_or(true) && accepted);
    }
    gzip.or(any).unwrap_or(false)
}

/// Whether a qvalue (`0`, `0.5`, `1.000`...) is above 0; `None` if it is
/// not one.
fn weight_above_zero(value: &str) -> Option<bool> {
    let (whole, fraction) = value.split_once('.').unwrap_or((value, ""));
    let digits_ok = fraction.len() <= 3 && fraction.bytes().all(|b| b.is_ascii_digit());
    if !digits_ok || (value.contains('.') && whole.is_empty()) {
        return None;
    }
    match whole {
        "0" => Some(fraction.bytes().any(|b| b != b'0')),
        "1" if fraction.bytes().all(|b| b == b'0') => Some(true),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::testkit::GzipReader;

    #[test]
    fn accept_encoding_is_read_with_its_weights() {
        for yes in [
            "gzip",
            "GZIP",
            "x-gzip",
            "gzip, deflate, br",
            "br;q=1.0, gzip;q=0.8, *;q=0.1",
            "gzip;q=0.001",
            "gzip ; Q = 1",
            "*",
            "deflate, *;q=0.5",
            "identity;q=0, gzip",
        ] {
            assert!(accepts_gzip(yes), "{yes:?} accepts gzip");
        }
        for no in [
            "",
            "identity",
            "deflate, br",
            "gzip;q=0",
            "gzip;q=0.000",
            "gzip; q=0, *",
            "*;q=0",
            "*, gzip;q=0",
            "gzip;q=2",
            "gzip;q=0.5000",
            "gzip;q=abc",
            "gzip;q=",
            "gzip;q=.5",
            "gzipx",
            "gzip, gzip;q=0",
        ] {
            assert!(!accepts_gzip(no), "{no:?} does not accept gzip");
        }
    }

    #[test]
    #[cfg(feature = "gzip")]
    fn each_flush_makes_everything_pushed_decodable() {
        let mut gzip = Gzip::new().unwrap();
        let mut client = GzipReader::new();
        let mut out = Vec::new();
        for i in 0..50 {
            let event =
                format!("id: 1700000000000-{i}\ndata: {{\"n\":{i},\"text\":\"hello\"}}\n\n");
            gzip.push(event.as_bytes(), &mut out).unwrap();
            gzip.flush(&mut out).unwrap();
            assert_eq!(client.read(&out), event);
            out.clear();
        }
        gzip.finish(&mut out).unwrap();
        assert_eq!(client.read(&out), "");
        client.0.try_finish().unwrap();
    }

    #[test]
    #[cfg(feature = "gzip")]
    fn a_finished_member_is_a_whole_gzip_file() {
        let mut gzip = Gzip::new().unwrap();
        let mut out = Vec::new();
        let big: String = (0..20_000).map(|i| format!("data: {i}\n\n")).collect();
        gzip.push(big.as_bytes(), &mut out).unwrap();
        gzip.flush(&mut out).unwrap();
        gzip.push(b": heartbeat\n", &mut out).unwrap();
        gzip.finish(&mut out).unwrap();
        assert!(out.len() < big.len() / 3, "{} bytes", out.len());
        let mut whole = String::new();
        let mut reader = flate2::read::GzDecoder::new(&out[..]);
        std::io::Read::read_to_string(&mut reader, &mut whole).unwrap();
        assert_eq!(whole, format!("{big}: heartbeat\n"));
    }

    #[test]
    #[cfg(feature = "gzip")]
    fn input_that_does_not_compress_still_fits() {
        let mut gzip = Gzip::new().unwrap();
        let mut out = Vec::new();
        // A xorshift stream: no repeats to find.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let noise: Vec<u8> = (0..300_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x.to_le_bytes()[0]
            })
            .collect();
        gzip.push(&noise, &mut out).unwrap();
        gzip.finish(&mut out).unwrap();
        let mut whole = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&out[..]), &mut whole)
            .unwrap();
        assert_eq!(whole, noise);
    }
}
