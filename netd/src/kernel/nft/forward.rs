//! netd's accept rules in other tables' forward chains (see
//! `plan::forward`): read what is there, add what is missing, remove what
//! no network asks for any more. Each rule carries the comment `netd BRIDGE
//! in|out`, which is how netd finds its own rules again (and what the
//! operator sees in `nft list ruleset` / `iptables -L`).

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{CStr, CString};
use std::os::raw::c_char;

use anyhow::{Context, Result, anyhow};
use nftnl::nftnl_sys::{self as sys, libc};
use nftnl::{Batch, Chain, MsgType, ProtoFamily, Rule, Table};

use super::REG1;
use super::expr::{cmp, counter, meta, verdict};
use super::socket::Nft;
use crate::plan::forward::{ChainRef, Family, ForwardAccept, NETD_TABLE, Scope, comment, is_ours};

const NF_INET_FORWARD: u32 = 2;
const NF_DROP: u32 = 0;

/// A chain as the kernel lists it.
#[derive(Debug, Clone)]
struct ChainInfo {
    at: ChainRef,
    /// Hook number and policy, for base chains.
    base: Option<(u32, u32)>,
}

impl ChainInfo {
    fn is_forward(&self) -> bool {
        matches!(self.base, Some((NF_INET_FORWARD, _)))
    }

    /// What `auto` means: a forward base chain with policy drop.
    fn drops_forward(&self) -> bool {
        self.base == Some((NF_INET_FORWARD, NF_DROP))
            && !(self.at.family == Family::Inet && self.at.table == NETD_TABLE)
    }
}

/// One of netd's rules found in a chain.
#[derive(Debug, Clone)]
struct Found {
    at: ChainRef,
    comment: String,
    handle: u64,
}

/// What a sync changed, and what it could not.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ForwardReport {
    pub added: usize,
    pub removed: usize,
    /// Chains named by an option that do not exist (yet).
    pub missing: Vec<String>,
    /// Chains whose change the kernel refused, with why (a table owned by
    /// another process, firewalld's for one, answers EPERM).
    pub failed: Vec<String>,
}

/// A netlink buffer aligned for `nlmsghdr` (mnl checks it).
fn aligned_buf() -> Vec<u64> {
    vec![0u64; (nftnl::nft_nlmsg_maxsize() as usize).div_ceil(8)]
}

fn bytes(buf: &mut [u64]) -> &mut [u8] {
    // SAFETY: a u64 slice viewed as its bytes, same lifetime.
    unsafe { std::slice::from_raw_parts_mut(buf.as_mut_ptr() as *mut u8, buf.len() * 8) }
}

/// Run one dump request on a socket of its own (blocking, and never the
/// batch socket, whose acks are read by count of what is queued) and pass
/// every answer to `cb`.
fn dump<T>(
    build: impl FnOnce(*mut c_char, u32) -> u32,
    cb: mnl::Callback<T>,
    data: &mut T,
) -> Result<()> {
    let sock = mnl::Socket::new(mnl::Bus::Netfilter).context("open netfilter socket")?;
    let seq = 1;
    let mut req = aligned_buf();
    let len = build(bytes(&mut req).as_mut_ptr() as *mut c_char, seq) as usize;
    sock.send(&bytes(&mut req)[..len])
        .context("send nftables dump request")?;
    let mut buf = aligned_buf();
    loop {
        let n = sock
            .recv_raw(bytes(&mut buf))
            .context("receive nftables dump")?;
        match mnl::cb_run2(&bytes(&mut buf)[..n], seq, sock.portid(), cb, data)
            .context("read nftables dump")?
        {
            mnl::CbResult::Stop => return Ok(()),
            mnl::CbResult::Ok => {}
        }
    }
}

fn cstr(p: *const c_char) -> Option<String> {
    // SAFETY: nftnl returns NUL-terminated strings it owns, or null.
    (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
}

fn chain_cb(h: &libc::nlmsghdr, out: &mut Vec<ChainInfo>) -> libc::c_int {
    // SAFETY: parse into a fresh chain object, read, free.
    unsafe {
        let c = sys::nftnl_chain_alloc();
        if c.is_null() {
            return mnl::mnl_sys::MNL_CB_ERROR;
        }
        if sys::nftnl_chain_nlmsg_parse(h as *const _ as *const _, c) >= 0 {
            let family =
                Family::from_nfproto(sys::nftnl_chain_get_u32(c, sys::NFTNL_CHAIN_FAMILY as u16));
            let table = cstr(sys::nftnl_chain_get_str(c, sys::NFTNL_CHAIN_TABLE as u16));
            let name = cstr(sys::nftnl_chain_get_str(c, sys::NFTNL_CHAIN_NAME as u16));
            let base = sys::nftnl_chain_is_set(c, sys::NFTNL_CHAIN_HOOKNUM as u16).then(|| {
                (
                    sys::nftnl_chain_get_u32(c, sys::NFTNL_CHAIN_HOOKNUM as u16),
                    sys::nftnl_chain_get_u32(c, sys::NFTNL_CHAIN_POLICY as u16),
                )
            });
            if let (Some(family), Some(table), Some(chain)) = (family, table, name) {
                out.push(ChainInfo {
                    at: ChainRef {
                        family,
                        table,
                        chain,
                    },
                    base,
                });
            }
        }
        sys::nftnl_chain_free(c);
    }
    mnl::mnl_sys::MNL_CB_OK
}

/// The comment in a rule's user data (libnftnl's TLVs: type, length, value).
fn udata_comment(udata: &[u8]) -> Option<String> {
    const COMMENT: u8 = sys::NFTNL_UDATA_RULE_COMMENT as u8;
    let mut i = 0;
    while i + 2 <= udata.len() {
        let (ty, len) = (udata[i], udata[i + 1] as usize);
        let v = udata.get(i + 2..i + 2 + len)?;
        if ty == COMMENT {
            let s = v.split(|b| *b == 0).next()?;
            return std::str::from_utf8(s).ok().map(str::to_owned);
        }
        i += 2 + len;
    }
    None
}

fn rule_cb(h: &libc::nlmsghdr, out: &mut Vec<Found>) -> libc::c_int {
    // SAFETY: as in chain_cb.
    unsafe {
        let r = sys::nftnl_rule_alloc();
        if r.is_null() {
            return mnl::mnl_sys::MNL_CB_ERROR;
        }
        if sys::nftnl_rule_nlmsg_parse(h as *const _ as *const _, r) >= 0 {
            let mut len = 0u32;
            let p = sys::nftnl_rule_get_data(r, sys::NFTNL_RULE_USERDATA as u16, &mut len);
            let comment = (!p.is_null())
                .then(|| udata_comment(std::slice::from_raw_parts(p as *const u8, len as usize)))
                .flatten();
            if let Some(comment) = comment.filter(|c| is_ours(c)) {
                let family =
                    Family::from_nfproto(sys::nftnl_rule_get_u32(r, sys::NFTNL_RULE_FAMILY as u16));
                let table = cstr(sys::nftnl_rule_get_str(r, sys::NFTNL_RULE_TABLE as u16));
                let chain = cstr(sys::nftnl_rule_get_str(r, sys::NFTNL_RULE_CHAIN as u16));
                if let (Some(family), Some(table), Some(chain)) = (family, table, chain) {
                    out.push(Found {
                        at: ChainRef {
                            family,
                            table,
                            chain,
                        },
                        comment,
                        handle: sys::nftnl_rule_get_u64(r, sys::NFTNL_RULE_HANDLE as u16),
                    });
                }
            }
        }
        sys::nftnl_rule_free(r);
    }
    mnl::mnl_sys::MNL_CB_OK
}

fn list_chains() -> Result<Vec<ChainInfo>> {
    let mut out = Vec::new();
    dump(
        |buf, seq| {
            // SAFETY: builds a header into a buffer of nft_nlmsg_maxsize().
            unsafe {
                let h = sys::nftnl_nlmsg_build_hdr(
                    buf,
                    libc::NFT_MSG_GETCHAIN as u16,
                    libc::NFPROTO_UNSPEC as u16,
                    libc::NLM_F_DUMP as u16,
                    seq,
                );
                (*h).nlmsg_len
            }
        },
        chain_cb,
        &mut out,
    )
    .context("list nftables chains")?;
    Ok(out)
}

/// netd's rules in one table.
fn our_rules(family: Family, table: &str) -> Result<Vec<Found>> {
    let name = CString::new(table).map_err(|_| anyhow!("table name {table:?} has a NUL"))?;
    let mut out = Vec::new();
    dump(
        |buf, seq| {
            // SAFETY: as in list_chains; the rule only names the table, so
            // the kernel lists that table's rules alone.
            unsafe {
                let h = sys::nftnl_nlmsg_build_hdr(
                    buf,
                    libc::NFT_MSG_GETRULE as u16,
                    family.nfproto() as u16,
                    libc::NLM_F_DUMP as u16,
                    seq,
                );
                let r = sys::nftnl_rule_alloc();
                if !r.is_null() {
                    sys::nftnl_rule_set_str(r, sys::NFTNL_RULE_TABLE as u16, name.as_ptr());
                    sys::nftnl_rule_nlmsg_build_payload(h, r);
                    sys::nftnl_rule_free(r);
                }
                (*h).nlmsg_len
            }
        },
        rule_cb,
        &mut out,
    )
    .with_context(|| format!("list rules of table {} {table}", family.name()))?;
    // The kernel filters by name only where it supports that: check.
    out.retain(|f| f.at.family == family && f.at.table == table);
    Ok(out)
}

fn proto_family(f: Family) -> ProtoFamily {
    match f {
        Family::Ip => ProtoFamily::Ipv4,
        Family::Ip6 => ProtoFamily::Ipv6,
        Family::Inet => ProtoFamily::Inet,
    }
}

/// `iifname BRIDGE counter accept` (or `oifname`), with netd's comment.
fn accept_rule<'a>(chain: &'a Chain<'a>, bridge: &str, inbound: bool) -> Result<Rule<'a>> {
    let key = if inbound {
        libc::NFT_META_OIFNAME
    } else {
        libc::NFT_META_IIFNAME
    };
    let mut name = bridge.as_bytes().to_vec();
    name.push(0);
    let mut r = Rule::new(chain);
    r.add_expr(&meta(key, REG1));
    r.add_expr(&cmp(libc::NFT_CMP_EQ, REG1, &name));
    r.add_expr(&counter());
    r.add_expr(&verdict(libc::NF_ACCEPT, None));
    let c = CString::new(comment(bridge, inbound))?;
    r.set_comment(c).map_err(|e| anyhow!("rule comment: {e}"))?;
    Ok(r)
}

/// The bridge and direction of one of netd's comments.
fn parse_comment(c: &str) -> Option<(&str, bool)> {
    let mut w = c.split(' ').skip(1);
    Some((w.next()?, w.next()? == "out"))
}

impl Nft {
    /// Make netd's accept rules in other tables' chains exactly `want`.
    /// Chains are changed one batch each, so a table netd may not change
    /// (owned by another process) does not keep the others from theirs.
    pub fn sync_forward(&self, want: &[ForwardAccept]) -> Result<ForwardReport> {
        let chains = list_chains()?;
        let mut report = ForwardReport::default();
        let mut desired: BTreeSet<(ChainRef, String)> = BTreeSet::new();
        for fa in want {
            let targets: Vec<ChainRef> = match &fa.scope {
                Scope::Auto => chains
                    .iter()
                    .filter(|c| c.drops_forward())
                    .map(|c| c.at.clone())
                    .collect(),
                Scope::Chains(list) => list
                    .iter()
                    .filter(|c| {
                        let there = chains.iter().any(|x| &x.at == *c);
                        if !there {
                            report.missing.push(c.to_string());
                        }
                        there
                    })
                    .cloned()
                    .collect(),
            };
            for t in targets {
                desired.insert((t.clone(), comment(&fa.bridge, false)));
                desired.insert((t, comment(&fa.bridge, true)));
            }
        }
        report.missing.sort();
        report.missing.dedup();
        // Where netd's rules can matter (and so may have been left): every
        // table with a forward base chain, and every table asked for.
        let tables: BTreeSet<(Family, String)> = chains
            .iter()
            .filter(|c| c.is_forward() && c.at.table != NETD_TABLE)
            .map(|c| (c.at.family, c.at.table.clone()))
            .chain(desired.iter().map(|(c, _)| (c.family, c.table.clone())))
            .collect();
        let mut have: Vec<Found> = Vec::new();
        for (f, t) in &tables {
            have.extend(our_rules(*f, t)?);
        }
        // Per chain: handles to delete, comments to add.
        let mut work: BTreeMap<ChainRef, (Vec<u64>, Vec<String>)> = BTreeMap::new();
        let mut seen: BTreeSet<(ChainRef, String)> = BTreeSet::new();
        for f in have {
            let key = (f.at.clone(), f.comment.clone());
            // Not wanted, or a second copy of one that is.
            if !desired.contains(&key) || !seen.insert(key) {
                work.entry(f.at).or_default().0.push(f.handle);
            }
        }
        for (at, c) in &desired {
            if !seen.contains(&(at.clone(), c.clone())) {
                work.entry(at.clone()).or_default().1.push(c.clone());
            }
        }
        for (at, (del, add)) in work {
            match self.change_chain(&at, &del, &add) {
                Ok(()) => {
                    report.removed += del.len();
                    report.added += add.len();
                }
                Err(e) => report.failed.push(format!("{at}: {e:#}")),
            }
        }
        Ok(report)
    }

    fn change_chain(&self, at: &ChainRef, del: &[u64], add: &[String]) -> Result<()> {
        let table = Table::new(CString::new(at.table.as_str())?, proto_family(at.family));
        let chain = Chain::new(CString::new(at.chain.as_str())?, &table);
        let mut batch = Batch::new();
        for h in del {
            let mut r = Rule::new(&chain);
            r.set_handle(*h);
            batch.add(&r, MsgType::Del);
        }
        for c in add {
            let Some((bridge, inbound)) = parse_comment(c) else {
                continue;
            };
            batch.add(&accept_rule(&chain, bridge, inbound)?, MsgType::Add);
        }
        self.send(&batch.finalize())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_from_user_data() {
        // Another TLV first, then the comment with its NUL.
        let mut u = vec![5u8, 2, 9, 9, 0, 12];
        u.extend_from_slice(b"netd br0 in\0");
        assert_eq!(udata_comment(&u).as_deref(), Some("netd br0 in"));
        assert_eq!(udata_comment(&[0, 40, b'x']), None, "truncated");
        assert_eq!(parse_comment("netd br0 out"), Some(("br0", true)));
        assert_eq!(parse_comment("netd br0 in"), Some(("br0", false)));
    }
}
