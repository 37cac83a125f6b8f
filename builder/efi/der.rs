//! Just enough DER (X.690) to write an Authenticode signature and read one back: a
//! value is its tag, its length and its contents; constructed values nest.

/// Tags used here (universal class, or context-specific `[n]`).
pub const INTEGER: u8 = 0x02;
pub const BIT_STRING: u8 = 0x03;
pub const OCTET_STRING: u8 = 0x04;
pub const NULL: u8 = 0x05;
pub const OID: u8 = 0x06;
pub const SEQUENCE: u8 = 0x30;
pub const SET: u8 = 0x31;

/// `[n]` constructed (EXPLICIT, or IMPLICIT over a constructed type).
pub const fn context(n: u8) -> u8 {
    0xa0 | n
}

/// `[n]` primitive (IMPLICIT over a primitive type).
pub const fn context_primitive(n: u8) -> u8 {
    0x80 | n
}

/// One value: `tag`, its length, `contents`.
pub fn tlv(tag: u8, contents: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = contents.len();
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let bytes: Vec<u8> = n.to_be_bytes().into_iter().skip_while(|b| *b == 0).collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(contents);
    out
}

/// A constructed value of `parts`, in order.
pub fn seq(tag: u8, parts: &[&[u8]]) -> Vec<u8> {
    tlv(tag, &parts.concat())
}

/// A DER `SET OF`: its members sorted by their encodings.
pub fn set_of(tag: u8, mut members: Vec<Vec<u8>>) -> Vec<u8> {
    members.sort();
    tlv(tag, &members.concat())
}

/// An object identifier from its dotted arcs.
pub fn oid(arcs: &[u64]) -> Vec<u8> {
    let mut body = Vec::new();
    let base128 = |mut v: u64, body: &mut Vec<u8>| {
        let mut bytes = vec![(v & 0x7f) as u8];
        v >>= 7;
        while v > 0 {
            bytes.push(0x80 | (v & 0x7f) as u8);
            v >>= 7;
        }
        body.extend(bytes.into_iter().rev());
    };
    base128(arcs[0] * 40 + arcs[1], &mut body);
    for &arc in &arcs[2..] {
        base128(arc, &mut body);
    }
    tlv(OID, &body)
}

/// A small non-negative INTEGER.
pub fn integer(v: u8) -> Vec<u8> {
    tlv(INTEGER, &[v])
}

/// An AlgorithmIdentifier with NULL parameters.
pub fn algorithm(arcs: &[u64]) -> Vec<u8> {
    seq(SEQUENCE, &[&oid(arcs), &tlv(NULL, &[])])
}

/// A value read from DER: its tag, contents, and the whole encoding.
#[derive(Debug, Clone, Copy)]
pub struct Value<'a> {
    pub tag: u8,
    pub contents: &'a [u8],
    pub whole: &'a [u8],
}

/// Why DER could not be read.
#[derive(Debug, thiserror::Error)]
#[error("malformed DER: {0}")]
pub struct Malformed(&'static str);

impl<'a> Value<'a> {
    /// The value at the start of `bytes`, and what follows it.
    pub fn read(bytes: &'a [u8]) -> Result<(Value<'a>, &'a [u8]), Malformed> {
        let (&tag, rest) = bytes.split_first().ok_or(Malformed("nothing to read"))?;
        let (&first, rest) = rest.split_first().ok_or(Malformed("no length"))?;
        let (len, rest) = if first < 0x80 {
            (first as usize, rest)
        } else {
            let n = (first & 0x7f) as usize;
            if n == 0 || n > 4 || rest.len() < n {
                return Err(Malformed("bad length"));
            }
            (rest[..n].iter().fold(0usize, |a, b| a << 8 | *b as usize), &rest[n..])
        };
        if rest.len() < len {
            return Err(Malformed("value runs past its end"));
        }
        let header = bytes.len() - rest.len();
        let value = Value { tag, contents: &rest[..len], whole: &bytes[..header + len] };
        Ok((value, &rest[len..]))
    }

    /// The values inside a constructed value, in order.
    pub fn children(&self) -> Result<Vec<Value<'a>>, Malformed> {
        let (mut out, mut rest) = (Vec::new(), self.contents);
        while !rest.is_empty() {
            let (v, r) = Value::read(rest)?;
            out.push(v);
            rest = r;
        }
        Ok(out)
    }

    /// The `i`th value inside, which must have `tag`.
    pub fn child(&self, i: usize, tag: u8) -> Result<Value<'a>, Malformed> {
        match self.children()?.get(i) {
            Some(v) if v.tag == tag => Ok(*v),
            _ => Err(Malformed("unexpected structure")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oids_lengths_and_sets_encode_as_der_does() {
        // sha256: 2.16.840.1.101.3.4.2.1
        assert_eq!(oid(&[2, 16, 840, 1, 101, 3, 4, 2, 1]), b"\x06\x09\x60\x86\x48\x01\x65\x03\x04\x02\x01");
        let long = tlv(OCTET_STRING, &[0u8; 300]);
        assert_eq!(&long[..4], b"\x04\x82\x01\x2c");
        let set = set_of(SET, vec![vec![2, 1, 9], vec![2, 1, 1]]);
        assert_eq!(set, b"\x31\x06\x02\x01\x01\x02\x01\x09");
        let (v, rest) = Value::read(&long).unwrap();
        assert_eq!((v.tag, v.contents.len(), rest.len()), (OCTET_STRING, 300, 0));
        assert!(Value::read(&long[..100]).is_err());
    }
}
