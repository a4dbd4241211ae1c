//! CHECK: the attachment is still as the ADD result described it.

use netd::ops::check::CheckError;
use netd_cni::{CniError, Env, NetConf, code, expected, sandbox_name};

use netd::plan::firewall::nat_elements;
use netd::store::Ref;

use super::{ipam_type, netd_error, open};
use crate::{ipam, ports, shape};

pub async fn check(conf: &NetConf, e: &Env, stdin: &[u8]) -> Result<(), CniError> {
    if let Some(kind) = ipam_type(conf) {
        ipam::exec(stdin, kind, "CHECK", e)?;
    }
    let netns = e.netns.clone().unwrap_or_default();
    let prev = conf
        .prev_result
        .as_ref()
        .ok_or_else(|| CniError::new(code::INVALID_CONFIG, "required prevResult missing"))?;
    let want = expected(prev, &e.ifname, &netns)?;
    let netd = open(conf).await?;
    let sandbox = sandbox_name(&e.container);
    netd.check_attachment(&conf.name, &sandbox, &e.ifname, &netns, &want.into())
        .await
        .map_err(|err| check_error(err, e))?;
    // The published ports netd recorded for this attachment are in the
    // kernel's maps, and in direct6 on a routed IPv6 network
    // (check_attachment found the endpoint just now). Ports on `[::1]` have
    // no element: the daemon's proxy serves them.
    let sb = netd
        .inspect_sandbox(Ref::Name(&sandbox))
        .map_err(netd_error)?;
    let Some(ep) = sb
        .endpoints
        .iter()
        .find(|x| x.network_name.as_str() == conf.name && x.endpoint.ifname.as_str() == e.ifname)
    else {
        return Ok(());
    };
    let net = netd.network(Ref::Name(&conf.name)).map_err(netd_error)?;
    ports::check(&nat_elements(&net, &ep.endpoint))?;
    // The limits the runtime asks for are on the devices, at their rates.
    match &conf.conventions.bandwidth {
        Some(bw) => shape::check(bw, ep.host_veth.as_str(), ep.endpoint.ifb().as_str()),
        None => Ok(()),
    }
}

fn check_error(err: CheckError, e: &Env) -> CniError {
    match err {
        CheckError::UnknownSandbox(_) => CniError::new(
            code::UNKNOWN_CONTAINER,
            format!("unknown container {}", e.container),
        ),
        CheckError::Netd(err) => netd_error(err),
        // The attachment differs from prevResult.
        err @ (CheckError::NamespaceGone(_)
        | CheckError::NoEndpoint { .. }
        | CheckError::NotBridge(_)
        | CheckError::NotReserved { .. }
        | CheckError::HostVethMissing(_)
        | CheckError::BridgeMissing(_)
        | CheckError::NotOnBridge { .. }
        | CheckError::InterfaceMissing { .. }
        | CheckError::Mac { .. }
        | CheckError::LacksAddress { .. }
        | CheckError::DefaultRoute { .. }
        | CheckError::Route { .. }) => CniError::new(code::GENERIC, err.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_sandbox_is_an_unknown_container_and_a_difference_is_generic() {
        let env = Env::from(|k| match k {
            "CNI_COMMAND" => Some("CHECK".into()),
            "CNI_CONTAINERID" => Some("ctr".into()),
            "CNI_NETNS" => Some("/run/netns/x".into()),
            "CNI_IFNAME" => Some("eth0".into()),
            _ => None,
        })
        .unwrap();
        let e = check_error(CheckError::UnknownSandbox("ctr".into()), &env);
        assert_eq!(
            (e.code, e.msg.as_str()),
            (code::UNKNOWN_CONTAINER, "unknown container ctr")
        );
        let e = check_error(
            CheckError::LacksAddress {
                ifname: "eth0".into(),
                address: "10.0.0.2/24".into(),
            },
            &env,
        );
        assert_eq!(e.code, code::GENERIC);
        assert_eq!(e.msg, "interface eth0 lacks address 10.0.0.2/24");
        let e = check_error(CheckError::Netd(netd::Error::Busy("x".into())), &env);
        assert_eq!(e.code, code::TRY_LATER);
    }
}
