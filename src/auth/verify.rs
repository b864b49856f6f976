//! Checking a password against a stored [`Hash`]: pure and deliberately slow where the
//! scheme is (bcrypt, SHA-crypt), so it runs off the event loop (see [`super`]). Every
//! comparison of digests is constant-time. [`count`] is how many verifications this process
//! ran (the auth tests read it through the debug log to check that unknown users and wrong
//! passwords both cost a hash).
use std::sync::atomic::{AtomicU64, Ordering};

use md5::{Digest, Md5};
use sha_crypt::PasswordVerifier;
use subtle::ConstantTimeEq;

use super::htpasswd::Hash;

static VERIFICATIONS: AtomicU64 = AtomicU64::new(0);

/// How many hashes this process computed to check a password.
pub fn count() -> u64 {
    VERIFICATIONS.load(Ordering::Relaxed)
}

/// Whether `password` matches `hash`.
pub fn verify(hash: &Hash, password: &[u8]) -> bool {
    VERIFICATIONS.fetch_add(1, Ordering::Relaxed);
    match hash {
        // bcrypt and sha-crypt compare their digests with `subtle` themselves.
        Hash::Bcrypt(h) => bcrypt::verify(password, h).unwrap_or(false),
        Hash::ShaCrypt(h) => sha_crypt::ShaCrypt::default()
            .verify_password(password, h.as_str())
            .is_ok(),
        Hash::Apr1 { salt, hash } => {
            let got = apr1(password, salt.as_bytes());
            got.as_bytes().ct_eq(hash.as_bytes()).into()
        }
        Hash::Sha1(want) => {
            let got = sha1::Sha1::digest(password);
            got.as_slice().ct_eq(want).into()
        }
    }
}

const CRYPT64: &[u8; 64] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// The 22-character checksum of Apache's `$apr1$` (Poul-Henning Kamp's MD5-crypt with the
/// magic `$apr1$`, as apr_md5.c computes it). No maintained crate offers this variant; it
/// is MD5 (from RustCrypto's md-5) in a fixed pattern, checked against `htpasswd -m`.
pub fn apr1(password: &[u8], salt: &[u8]) -> String {
    const MAGIC: &[u8] = b"$apr1$";
    let salt = &salt[..salt.len().min(8)];
    let alt = Md5::new()
        .chain_update(password)
        .chain_update(salt)
        .chain_update(password)
        .finalize();
    let mut ctx = Md5::new()
        .chain_update(password)
        .chain_update(MAGIC)
        .chain_update(salt);
    let mut left = password.len();
    while left > 0 {
        let n = left.min(16);
        ctx.update(&alt[..n]);
        left -= n;
    }
    let mut i = password.len();
    while i > 0 {
        if i & 1 == 1 {
            ctx.update([0u8]);
        } else {
            ctx.update(&password[..1]);
        }
        i >>= 1;
    }
    let mut fin: [u8; 16] = ctx.finalize().into();
    for round in 0..1000 {
        let mut c = Md5::new();
        if round & 1 == 1 {
            c.update(password);
        } else {
            c.update(fin);
        }
        if round % 3 != 0 {
            c.update(salt);
        }
        if round % 7 != 0 {
            c.update(password);
        }
        if round & 1 == 1 {
            c.update(fin);
        } else {
            c.update(password);
        }
        fin = c.finalize().into();
    }
    let mut out = String::with_capacity(22);
    let mut put = |v: u32, n: usize| {
        let mut v = v;
        for _ in 0..n {
            out.push(char::from(CRYPT64[(v & 0x3f) as usize]));
            v >>= 6;
        }
    };
    let f = |i: usize| u32::from(fin[i]);
    for (a, b, c) in [(0, 6, 12), (1, 7, 13), (2, 8, 14), (3, 9, 15), (4, 10, 5)] {
        put((f(a) << 16) | (f(b) << 8) | f(c), 4);
    }
    put(f(11), 2);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::htpasswd::parse_line;

    fn hash(line: &str) -> Hash {
        parse_line(line.as_bytes())
            .expect("valid")
            .expect("entry")
            .1
    }

    /// Vectors made with `htpasswd -nb{B,m,s,2,5} a pw` (apache2-utils) and `openssl passwd`.
    #[test]
    fn each_scheme_accepts_its_password_only() {
        for line in [
            "a:$2y$05$4wJwdLIDEmb/uRKy9n0vGOgA2a2qtObJL8KeV8Getzg35Y.654O.a",
            "a:$apr1$evmUkkrV$XsZsv0x1Kfp7aqRS/L3f/0",
            "a:$apr1$x6FXgKCG$h4XnzMQrEj3jQMohWnq1u0",
            "a:{SHA}GpHWL3ymc5liWkNopqtdSjuqYHM=",
            "a:$5$gJXkWEbrXQzoIfTI$USsnvr2TARKvp83pZbummlBhP.lgje.u/xjN5ko3u5/",
            "a:$5$salt$Oo0nc86Ktkc05wTAggFOZIQJhfxhAZY1mlIogZJN.i.",
            "a:$6$BIgVCOMCCkLvy/Hv$RP0cQUXf3iAAgEFYI1fkaIvq/kawZuu8OLA/8d7AnnqqXwoQSEWOeNb5NPitgRX7QXvRGmgWxFgcxrJ3iLeRg1",
            "a:$6$salt$AkOOBO38SQQ8T8Q46KuCONe.8zg41nvCDKDq7pVQd2n2hy8sf8aR3G89VY.57up0eSIa/69odCCcLT4hx7FpW/",
        ] {
            let h = hash(line);
            assert!(verify(&h, b"pw"), "{line}");
            assert!(!verify(&h, b"pW"), "{line}");
            assert!(!verify(&h, b""), "{line}");
        }
        // bcrypt's $2b$ and $2a$ prefixes name the same function for these inputs.
        let b = "a:$2b$05$4wJwdLIDEmb/uRKy9n0vGOgA2a2qtObJL8KeV8Getzg35Y.654O.a";
        assert!(verify(&hash(b), b"pw"));
        let a = "a:$2a$05$4wJwdLIDEmb/uRKy9n0vGOgA2a2qtObJL8KeV8Getzg35Y.654O.a";
        assert!(verify(&hash(a), b"pw"));
    }

    #[test]
    fn counts_every_verification() {
        let h = hash("a:{SHA}GpHWL3ymc5liWkNopqtdSjuqYHM=");
        let before = count();
        verify(&h, b"x");
        verify(&h, b"pw");
        assert!(count() >= before + 2);
    }
}
