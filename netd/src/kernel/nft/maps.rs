//! The sets and maps of the table, and the messages that carry their
//! elements (the published ports).

use std::collections::BTreeSet;
use std::ffi::{CStr, c_void};
use std::net::IpAddr;
use std::os::raw::c_char;
use std::ptr::NonNull;

use nftnl::nftnl_sys::{self as sys, libc};
use nftnl::{MsgType, NlMsg};

use super::rules::proto_number;
use super::{
    MAP_ADDR, MAP_ADDR6, MAP_ANY, MAP_ANY6, SET_DIRECT4, SET_DIRECT6, SET_TRUSTED4, SET_TRUSTED6,
    TABLE,
};
use crate::plan::firewall::PortElement;

/// A named set or map, with raw control of key and data types.
pub(super) struct RawSet {
    set: NonNull<sys::nftnl_set>,
}

impl RawSet {
    pub(super) fn new(
        name: &CStr,
        id: u32,
        key_type: u32,
        key_len: u32,
        data: Option<(u32, u32)>,
    ) -> RawSet {
        // SAFETY: fresh allocation, attributes set by value before use.
        unsafe {
            let set = NonNull::new(sys::nftnl_set_alloc()).expect("nftnl_set_alloc: out of memory");
            let s = set.as_ptr();
            sys::nftnl_set_set_u32(s, sys::NFTNL_SET_FAMILY as u16, libc::NFPROTO_INET as u32);
            sys::nftnl_set_set_str(s, sys::NFTNL_SET_TABLE as u16, TABLE.as_ptr());
            sys::nftnl_set_set_str(s, sys::NFTNL_SET_NAME as u16, name.as_ptr());
            sys::nftnl_set_set_u32(s, sys::NFTNL_SET_ID as u16, id);
            sys::nftnl_set_set_u32(s, sys::NFTNL_SET_KEY_TYPE as u16, key_type);
            sys::nftnl_set_set_u32(s, sys::NFTNL_SET_KEY_LEN as u16, key_len);
            if let Some((dtype, dlen)) = data {
                sys::nftnl_set_set_u32(s, sys::NFTNL_SET_FLAGS as u16, libc::NFT_SET_MAP as u32);
                sys::nftnl_set_set_u32(s, sys::NFTNL_SET_DATA_TYPE as u16, dtype);
                sys::nftnl_set_set_u32(s, sys::NFTNL_SET_DATA_LEN as u16, dlen);
            }
            RawSet { set }
        }
    }

    /// Tell `nft list` the key is in host byte order (strings), as nft
    /// itself records in the set's user data; the kernel ignores it.
    pub(super) fn host_order_key(&mut self) {
        // TLV: NFTNL_UDATA_SET_KEYBYTEORDER (0), length 4, BYTEORDER_HOST_ENDIAN (1).
        let mut udata = vec![0u8, 4];
        udata.extend_from_slice(&1u32.to_ne_bytes());
        // SAFETY: nftnl copies the buffer.
        unsafe {
            sys::nftnl_set_set_data(
                self.set.as_ptr(),
                sys::NFTNL_SET_USERDATA as u16,
                udata.as_ptr() as *const c_void,
                udata.len() as u32,
            );
        }
    }

    /// A set object that only names an existing set, to carry elements.
    fn reference(name: &CStr) -> RawSet {
        // SAFETY: as above.
        unsafe {
            let set = NonNull::new(sys::nftnl_set_alloc()).expect("nftnl_set_alloc: out of memory");
            let s = set.as_ptr();
            sys::nftnl_set_set_u32(s, sys::NFTNL_SET_FAMILY as u16, libc::NFPROTO_INET as u32);
            sys::nftnl_set_set_str(s, sys::NFTNL_SET_TABLE as u16, TABLE.as_ptr());
            sys::nftnl_set_set_str(s, sys::NFTNL_SET_NAME as u16, name.as_ptr());
            RawSet { set }
        }
    }

    pub(super) fn add_elem(&mut self, key: &[u8], data: Option<&[u8]>) {
        // SAFETY: the element is handed over to the set, which frees it.
        unsafe {
            let el = sys::nftnl_set_elem_alloc();
            assert!(!el.is_null(), "nftnl_set_elem_alloc: out of memory");
            sys::nftnl_set_elem_set(
                el,
                sys::NFTNL_SET_ELEM_KEY as u16,
                key.as_ptr() as *const c_void,
                key.len() as u32,
            );
            if let Some(d) = data {
                sys::nftnl_set_elem_set(
                    el,
                    sys::NFTNL_SET_ELEM_DATA as u16,
                    d.as_ptr() as *const c_void,
                    d.len() as u32,
                );
            }
            sys::nftnl_set_elem_add(self.set.as_ptr(), el);
        }
    }
}

impl Drop for RawSet {
    fn drop(&mut self) {
        // SAFETY: we own the set and its elements.
        unsafe { sys::nftnl_set_free(self.set.as_ptr()) }
    }
}

/// The set itself (NEWSET).
pub(super) struct SetMsg<'a>(pub(super) &'a RawSet);
/// Its elements (NEWSETELEM without NLM_F_EXCL: adding an element that is
/// already there with the same data is not an error, so re-applying is safe).
pub(super) struct ElemsMsg<'a>(pub(super) &'a RawSet);

// SAFETY: both write a single message bounded by nft_nlmsg_maxsize(); element
// messages are chunked by the caller to stay far below it.
unsafe impl NlMsg for SetMsg<'_> {
    unsafe fn write(&self, buf: *mut c_void, seq: u32, _t: MsgType) {
        unsafe {
            let h = sys::nftnl_nlmsg_build_hdr(
                buf as *mut c_char,
                libc::NFT_MSG_NEWSET as u16,
                libc::NFPROTO_INET as u16,
                (libc::NLM_F_CREATE | libc::NLM_F_ACK) as u16,
                seq,
            );
            sys::nftnl_set_nlmsg_build_payload(h, self.0.set.as_ptr());
        }
    }
}

unsafe impl NlMsg for ElemsMsg<'_> {
    unsafe fn write(&self, buf: *mut c_void, seq: u32, t: MsgType) {
        let (ty, flags) = match t {
            MsgType::Add => (
                libc::NFT_MSG_NEWSETELEM,
                libc::NLM_F_CREATE | libc::NLM_F_ACK,
            ),
            MsgType::Del => (libc::NFT_MSG_DELSETELEM, libc::NLM_F_ACK),
        };
        unsafe {
            let h = sys::nftnl_nlmsg_build_hdr(
                buf as *mut c_char,
                ty as u16,
                libc::NFPROTO_INET as u16,
                flags as u16,
                seq,
            );
            sys::nftnl_set_elems_nlmsg_build_payload(h, self.0.set.as_ptr());
        }
    }
}

fn ip_bytes(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// Key and data of a port element, each concatenation member padded to 4
/// bytes: `[host address .] proto . port : address . port`, the addresses
/// 4 or 16 bytes by family.
fn port_elem_bytes(e: &PortElement) -> (Vec<u8>, Vec<u8>) {
    let mut key = Vec::with_capacity(24);
    if let Some(ip) = e.host_ip {
        key.extend_from_slice(&ip_bytes(ip));
    }
    key.extend_from_slice(&[proto_number(e.proto), 0, 0, 0]);
    key.extend_from_slice(&e.host_port.to_be_bytes());
    key.extend_from_slice(&[0, 0]);
    let mut data = ip_bytes(e.addr);
    data.extend_from_slice(&e.port.to_be_bytes());
    data.extend_from_slice(&[0, 0]);
    (key, data)
}

/// The key of a container port reachable directly on a routed network:
/// `address . proto . port`.
fn direct_key(e: &PortElement) -> Vec<u8> {
    let mut key = ip_bytes(e.addr);
    key.extend_from_slice(&[proto_number(e.proto), 0, 0, 0]);
    key.extend_from_slice(&e.port.to_be_bytes());
    key.extend_from_slice(&[0, 0]);
    key
}

/// The map an element goes to: by the container address's family, and
/// whether it names a host address.
fn map_of(e: &PortElement) -> &'static CStr {
    match (e.addr.is_ipv6(), e.host_ip.is_some()) {
        (false, true) => MAP_ADDR,
        (false, false) => MAP_ANY,
        (true, true) => MAP_ADDR6,
        (true, false) => MAP_ANY6,
    }
}

/// Which elements go into one of the sets of container ports.
type Wanted = fn(&PortElement) -> bool;

/// Element messages for `elems`, split so no message nears the 64 KiB limit.
pub(super) fn element_sets(elems: &[PortElement]) -> Vec<RawSet> {
    const CHUNK: usize = 512;
    let mut out = Vec::new();
    for name in [MAP_ADDR, MAP_ANY, MAP_ADDR6, MAP_ANY6] {
        let mine: Vec<&PortElement> = elems.iter().filter(|e| map_of(e) == name).collect();
        for chunk in mine.chunks(CHUNK) {
            let mut s = RawSet::reference(name);
            for e in chunk {
                let (k, d) = port_elem_bytes(e);
                s.add_elem(&k, Some(&d));
            }
            out.push(s);
        }
    }
    // Two host ports may lead to one container port: one element for both
    // (a batch deleting it twice would fail whole).
    let sets: [(&CStr, Wanted); 4] = [
        (SET_DIRECT4, |e| e.direct && e.addr.is_ipv4()),
        (SET_DIRECT6, |e| e.direct && e.addr.is_ipv6()),
        (SET_TRUSTED4, |e| e.trusted && e.addr.is_ipv4()),
        (SET_TRUSTED6, |e| e.trusted && e.addr.is_ipv6()),
    ];
    for (name, wanted) in sets {
        let keys: BTreeSet<Vec<u8>> = elems.iter().filter(|e| wanted(e)).map(direct_key).collect();
        let keys: Vec<Vec<u8>> = keys.into_iter().collect();
        for chunk in keys.chunks(CHUNK) {
            let mut s = RawSet::reference(name);
            for k in chunk {
                s.add_elem(k, None);
            }
            out.push(s);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;
    use crate::model::Proto;

    #[test]
    fn element_layout_pads_members_to_four_bytes() {
        let e = PortElement {
            host_ip: Some(Ipv4Addr::new(127, 0, 0, 1).into()),
            proto: Proto::Udp,
            host_port: 8080,
            addr: Ipv4Addr::new(10, 0, 0, 2).into(),
            port: 80,
            direct: false,
            trusted: false,
        };
        let (k, d) = port_elem_bytes(&e);
        assert_eq!(k, vec![127, 0, 0, 1, 17, 0, 0, 0, 0x1f, 0x90, 0, 0]);
        assert_eq!(d, vec![10, 0, 0, 2, 0, 80, 0, 0]);
        let (k, _) = port_elem_bytes(&PortElement { host_ip: None, ..e });
        assert_eq!(k.len(), 8);
    }

    #[test]
    fn ipv6_elements_carry_sixteen_byte_addresses() {
        let e = PortElement {
            host_ip: Some(Ipv6Addr::LOCALHOST.into()),
            proto: Proto::Tcp,
            host_port: 8080,
            addr: "fd00::2".parse().unwrap(),
            port: 80,
            direct: true,
            trusted: false,
        };
        let (k, d) = port_elem_bytes(&e);
        assert_eq!(k.len(), 24);
        assert_eq!(&k[..16], &Ipv6Addr::LOCALHOST.octets());
        assert_eq!(d.len(), 20);
        assert_eq!(&d[16..], &[0, 80, 0, 0]);
        assert_eq!(map_of(&e), MAP_ADDR6);
        assert_eq!(map_of(&PortElement { host_ip: None, ..e }), MAP_ANY6);
        assert_eq!(direct_key(&e).len(), 24);
        // One direct element for two host ports to one container port.
        let twice = [
            e,
            PortElement {
                host_port: 8081,
                ..e
            },
        ];
        assert_eq!(element_sets(&twice).len(), 2);
    }
}
