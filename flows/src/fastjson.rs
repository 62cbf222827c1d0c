//! A serde adapter that makes decoding pbjson messages cheaper.
//!
//! pbjson reads every integer through an untagged enum (string, owned
//! string or number). serde tries the variants in turn, and each failed
//! try builds a full `serde_json::Error` (a formatted, allocated message
//! whose position is then parsed back out of the text). On a flow that is
//! about twenty throw-away errors per line, a sixth of the decoding time.
//!
//! [`from_str`] runs the same `Deserialize` impls over serde_json through a
//! transparent wrapper whose error type is a zero-sized marker, so failed
//! tries cost nothing. The result is identical; only the error message is
//! lost, and callers re-parse with plain serde_json to get it when they
//! need it (garbage lines are rare).

use std::fmt;

use serde::de::{
    self, DeserializeOwned, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess,
    VariantAccess, Visitor,
};

/// The error of the fast path: "something did not decode".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Failed;

impl fmt::Display for Failed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid input")
    }
}

impl std::error::Error for Failed {}

impl de::Error for Failed {
    fn custom<T: fmt::Display>(_msg: T) -> Self {
        Failed
    }
}

fn failed<E>(_: E) -> Failed {
    Failed
}

fn back<E: de::Error>(_: Failed) -> E {
    E::custom("invalid input")
}

/// Decodes `text` like `serde_json::from_str`, with cheap internal errors.
pub(crate) fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, Failed> {
    let mut de = serde_json::Deserializer::from_str(text);
    let value = T::deserialize(Wrap(&mut de))?;
    de.end().map_err(failed)?;
    Ok(value)
}

struct Wrap<D>(D);
struct WrapVisitor<V>(V);
struct WrapSeed<S>(S);
struct WrapSeq<A>(A);
struct WrapMap<A>(A);
struct WrapEnum<A>(A);
struct WrapVariant<A>(A);

macro_rules! forward_deserialize {
    ($($method:ident),* $(,)?) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Failed> {
            self.0.$method(WrapVisitor(visitor)).map_err(failed)
        }
    )*};
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Wrap<D> {
    type Error = Failed;

    forward_deserialize!(
        deserialize_any,
        deserialize_bool,
        deserialize_i8,
        deserialize_i16,
        deserialize_i32,
        deserialize_i64,
        deserialize_i128,
        deserialize_u8,
        deserialize_u16,
        deserialize_u32,
        deserialize_u64,
        deserialize_u128,
        deserialize_f32,
        deserialize_f64,
        deserialize_char,
        deserialize_str,
        deserialize_string,
        deserialize_bytes,
        deserialize_byte_buf,
        deserialize_option,
        deserialize_unit,
        deserialize_seq,
        deserialize_map,
        deserialize_identifier,
        deserialize_ignored_any,
    );

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Failed> {
        self.0
            .deserialize_unit_struct(name, WrapVisitor(visitor))
            .map_err(failed)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Failed> {
        self.0
            .deserialize_newtype_struct(name, WrapVisitor(visitor))
            .map_err(failed)
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Failed> {
        self.0
            .deserialize_tuple(len, WrapVisitor(visitor))
            .map_err(failed)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Failed> {
        self.0
            .deserialize_tuple_struct(name, len, WrapVisitor(visitor))
            .map_err(failed)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Failed> {
        self.0
            .deserialize_struct(name, fields, WrapVisitor(visitor))
            .map_err(failed)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Failed> {
        self.0
            .deserialize_enum(name, variants, WrapVisitor(visitor))
            .map_err(failed)
    }

    fn is_human_readable(&self) -> bool {
        self.0.is_human_readable()
    }
}

macro_rules! forward_visit {
    ($($method:ident($ty:ty)),* $(,)?) => {$(
        fn $method<E: de::Error>(self, v: $ty) -> Result<Self::Value, E> {
            self.0.$method::<Failed>(v).map_err(back)
        }
    )*};
}

impl<'de, V: Visitor<'de>> Visitor<'de> for WrapVisitor<V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.expecting(f)
    }

    forward_visit!(
        visit_bool(bool),
        visit_i8(i8),
        visit_i16(i16),
        visit_i32(i32),
        visit_i64(i64),
        visit_i128(i128),
        visit_u8(u8),
        visit_u16(u16),
        visit_u32(u32),
        visit_u64(u64),
        visit_u128(u128),
        visit_f32(f32),
        visit_f64(f64),
        visit_char(char),
        visit_str(&str),
        visit_borrowed_str(&'de str),
        visit_string(String),
        visit_bytes(&[u8]),
        visit_borrowed_bytes(&'de [u8]),
        visit_byte_buf(Vec<u8>),
    );

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        self.0.visit_none::<Failed>().map_err(back)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        self.0.visit_unit::<Failed>().map_err(back)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.0.visit_some(Wrap(d)).map_err(back)
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.0.visit_newtype_struct(Wrap(d)).map_err(back)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        self.0.visit_seq(WrapSeq(seq)).map_err(back)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        self.0.visit_map(WrapMap(map)).map_err(back)
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Self::Value, A::Error> {
        self.0.visit_enum(WrapEnum(data)).map_err(back)
    }
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for WrapSeed<S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.0.deserialize(Wrap(d)).map_err(back)
    }
}

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for WrapSeq<A> {
    type Error = Failed;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Failed> {
        self.0.next_element_seed(WrapSeed(seed)).map_err(failed)
    }

    fn size_hint(&self) -> Option<usize> {
        self.0.size_hint()
    }
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for WrapMap<A> {
    type Error = Failed;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Failed> {
        self.0.next_key_seed(WrapSeed(seed)).map_err(failed)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Failed> {
        self.0.next_value_seed(WrapSeed(seed)).map_err(failed)
    }

    fn size_hint(&self) -> Option<usize> {
        self.0.size_hint()
    }
}

impl<'de, A: EnumAccess<'de>> EnumAccess<'de> for WrapEnum<A> {
    type Error = Failed;
    type Variant = WrapVariant<A::Variant>;

    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, Self::Variant), Failed> {
        self.0
            .variant_seed(WrapSeed(seed))
            .map(|(v, variant)| (v, WrapVariant(variant)))
            .map_err(failed)
    }
}

impl<'de, A: VariantAccess<'de>> VariantAccess<'de> for WrapVariant<A> {
    type Error = Failed;

    fn unit_variant(self) -> Result<(), Failed> {
        self.0.unit_variant().map_err(failed)
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Failed> {
        self.0.newtype_variant_seed(WrapSeed(seed)).map_err(failed)
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, Failed> {
        self.0
            .tuple_variant(len, WrapVisitor(visitor))
            .map_err(failed)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Failed> {
        self.0
            .struct_variant(fields, WrapVisitor(visitor))
            .map_err(failed)
    }
}

#[cfg(test)]
mod tests {
    use holonet_proto::observer::GetFlowsResponse;

    use super::*;

    #[test]
    fn decodes_exactly_like_serde_json() {
        for line in [
            r#"{"flow":{"verdict":2,"drop_reason_desc":"POLICY_DENIED","l4":{"TCP":{"source_port":"80","destination_port":8080}},"l7":{"type":"RESPONSE","latency_ns":"4210334"},"is_reply":true,"unknown":{"x":[1,2,{"y":null}]}},"node_name":"n","time":"2025-03-12T09:41:07.5Z"}"#,
            r#"{"lost_events":{"source":"HUBBLE_RING_BUFFER","num_events_lost":"17","cpu":0}}"#,
            r#"{"flow":{"source":{"ID":1,"labels":["a","b"],"workloads":[{"name":"w","kind":"k"}]}}}"#,
        ] {
            let fast: GetFlowsResponse = from_str(line).unwrap();
            let slow: GetFlowsResponse = serde_json::from_str(line).unwrap();
            assert_eq!(fast, slow, "{line}");
        }
        for bad in [
            r#"{"flow":{"verdict":"NOPE"}}"#,
            r#"{"flow":"#,
            r#"{"flow":{}} x"#,
            r#"{"flow":{"l4":{"TCP":{"source_port":-1}}}}"#,
        ] {
            assert!(from_str::<GetFlowsResponse>(bad).is_err(), "{bad}");
            assert!(
                serde_json::from_str::<GetFlowsResponse>(bad).is_err(),
                "{bad}"
            );
        }
    }
}
