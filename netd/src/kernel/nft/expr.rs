//! nftables expressions by name and attributes, and the few kinds netd uses.

use std::ffi::{CStr, CString, c_void};
use std::ptr::NonNull;

use nftnl::Rule;
use nftnl::expr::Expression;
use nftnl::nftnl_sys::{self as sys, libc};

use super::VERDICT_REG;

const NFT_FIB_RESULT_ADDRTYPE: u32 = 3;
const NFTA_FIB_F_DADDR: u32 = 2;

/// One attribute of a raw expression.
pub(super) enum Attr {
    U32(u16, u32),
    Str(u16, CString),
    Data(u16, Vec<u8>),
}

/// Any nftables expression, by name and attributes: nftnl's typed
/// expressions cannot pick registers, invert lookups or do fib.
pub(super) struct Raw {
    pub(super) name: &'static CStr,
    pub(super) attrs: Vec<Attr>,
}

impl Expression for Raw {
    fn to_expr(&self, _rule: &Rule) -> NonNull<sys::nftnl_expr> {
        // SAFETY: nftnl_expr_alloc returns an owned expression (or null on
        // OOM, where aborting like nftnl itself does is the only option).
        unsafe {
            let e = NonNull::new(sys::nftnl_expr_alloc(self.name.as_ptr()))
                .expect("nftnl_expr_alloc: out of memory");
            for a in &self.attrs {
                match a {
                    Attr::U32(k, v) => sys::nftnl_expr_set_u32(e.as_ptr(), *k, *v),
                    Attr::Str(k, v) => {
                        sys::nftnl_expr_set_str(e.as_ptr(), *k, v.as_ptr());
                    }
                    Attr::Data(k, v) => {
                        sys::nftnl_expr_set(
                            e.as_ptr(),
                            *k,
                            v.as_ptr() as *const c_void,
                            v.len() as u32,
                        );
                    }
                }
            }
            e
        }
    }
}

pub(super) fn meta(key: i32, dreg: u32) -> Raw {
    Raw {
        name: c"meta",
        attrs: vec![
            Attr::U32(sys::NFTNL_EXPR_META_KEY as u16, key as u32),
            Attr::U32(sys::NFTNL_EXPR_META_DREG as u16, dreg),
        ],
    }
}

pub(super) fn payload(base: i32, offset: u32, len: u32, dreg: u32) -> Raw {
    Raw {
        name: c"payload",
        attrs: vec![
            Attr::U32(sys::NFTNL_EXPR_PAYLOAD_BASE as u16, base as u32),
            Attr::U32(sys::NFTNL_EXPR_PAYLOAD_OFFSET as u16, offset),
            Attr::U32(sys::NFTNL_EXPR_PAYLOAD_LEN as u16, len),
            Attr::U32(sys::NFTNL_EXPR_PAYLOAD_DREG as u16, dreg),
        ],
    }
}

pub(super) fn cmp(op: i32, sreg: u32, data: &[u8]) -> Raw {
    Raw {
        name: c"cmp",
        attrs: vec![
            Attr::U32(sys::NFTNL_EXPR_CMP_SREG as u16, sreg),
            Attr::U32(sys::NFTNL_EXPR_CMP_OP as u16, op as u32),
            Attr::Data(sys::NFTNL_EXPR_CMP_DATA as u16, data.to_vec()),
        ],
    }
}

pub(super) fn bitwise_and(reg: u32, mask: &[u8]) -> Raw {
    Raw {
        name: c"bitwise",
        attrs: vec![
            Attr::U32(sys::NFTNL_EXPR_BITWISE_SREG as u16, reg),
            Attr::U32(sys::NFTNL_EXPR_BITWISE_DREG as u16, reg),
            Attr::U32(sys::NFTNL_EXPR_BITWISE_LEN as u16, mask.len() as u32),
            Attr::Data(sys::NFTNL_EXPR_BITWISE_MASK as u16, mask.to_vec()),
            Attr::Data(sys::NFTNL_EXPR_BITWISE_XOR as u16, vec![0; mask.len()]),
        ],
    }
}

pub(super) fn lookup(set: &CStr, sreg: u32, dreg: Option<u32>) -> Raw {
    let mut attrs = vec![
        Attr::U32(sys::NFTNL_EXPR_LOOKUP_SREG as u16, sreg),
        Attr::Str(sys::NFTNL_EXPR_LOOKUP_SET as u16, set.to_owned()),
    ];
    if let Some(d) = dreg {
        attrs.push(Attr::U32(sys::NFTNL_EXPR_LOOKUP_DREG as u16, d));
    }
    Raw {
        name: c"lookup",
        attrs,
    }
}

pub(super) fn fib_daddr_type(dreg: u32) -> Raw {
    Raw {
        name: c"fib",
        attrs: vec![
            Attr::U32(sys::NFTNL_EXPR_FIB_RESULT as u16, NFT_FIB_RESULT_ADDRTYPE),
            Attr::U32(sys::NFTNL_EXPR_FIB_FLAGS as u16, NFTA_FIB_F_DADDR),
            Attr::U32(sys::NFTNL_EXPR_FIB_DREG as u16, dreg),
        ],
    }
}

pub(super) fn ct_status(dreg: u32) -> Raw {
    Raw {
        name: c"ct",
        attrs: vec![
            Attr::U32(sys::NFTNL_EXPR_CT_KEY as u16, libc::NFT_CT_STATUS as u32),
            Attr::U32(sys::NFTNL_EXPR_CT_DREG as u16, dreg),
        ],
    }
}

/// Lookup that matches when the key is *not* in the set.
pub(super) fn lookup_not(set: &CStr, sreg: u32) -> Raw {
    const NFT_LOOKUP_F_INV: u32 = 1;
    let mut l = lookup(set, sreg, None);
    l.attrs.push(Attr::U32(
        sys::NFTNL_EXPR_LOOKUP_FLAGS as u16,
        NFT_LOOKUP_F_INV,
    ));
    l
}

pub(super) fn dnat4(addr_reg: u32, port_reg: u32) -> Raw {
    dnat(libc::NFPROTO_IPV4, addr_reg, port_reg)
}

pub(super) fn dnat6(addr_reg: u32, port_reg: u32) -> Raw {
    dnat(libc::NFPROTO_IPV6, addr_reg, port_reg)
}

fn dnat(family: i32, addr_reg: u32, port_reg: u32) -> Raw {
    Raw {
        name: c"nat",
        attrs: vec![
            Attr::U32(sys::NFTNL_EXPR_NAT_TYPE as u16, libc::NFT_NAT_DNAT as u32),
            Attr::U32(sys::NFTNL_EXPR_NAT_FAMILY as u16, family as u32),
            Attr::U32(sys::NFTNL_EXPR_NAT_REG_ADDR_MIN as u16, addr_reg),
            Attr::U32(sys::NFTNL_EXPR_NAT_REG_PROTO_MIN as u16, port_reg),
        ],
    }
}

pub(super) fn masquerade() -> Raw {
    Raw {
        name: c"masq",
        attrs: vec![],
    }
}

pub(super) fn verdict(code: i32, chain: Option<&CStr>) -> Raw {
    let mut attrs = vec![
        Attr::U32(sys::NFTNL_EXPR_IMM_DREG as u16, VERDICT_REG),
        Attr::U32(sys::NFTNL_EXPR_IMM_VERDICT as u16, code as u32),
    ];
    if let Some(c) = chain {
        attrs.push(Attr::Str(sys::NFTNL_EXPR_IMM_CHAIN as u16, c.to_owned()));
    }
    Raw {
        name: c"immediate",
        attrs,
    }
}

pub(super) fn counter() -> Raw {
    Raw {
        name: c"counter",
        attrs: vec![],
    }
}
