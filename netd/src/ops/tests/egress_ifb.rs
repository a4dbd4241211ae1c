//! The ifb of a CNI egress limit goes with its endpoint when netd removes
//! the endpoint itself (`netd sandbox rm`, disconnect), not only at CNI
//! DEL: the kernel does not delete it with the veth.

use super::*;

fn shaped() -> EndpointRequest {
    EndpointRequest {
        egress_ifb: true,
        ..Default::default()
    }
}

/// A network, a sandbox on it whose endpoint has an ifb, as the CNI
/// plugin makes it after the attach; the ifb's name.
async fn shaped_sandbox(t: &T) -> String {
    t.netd
        .create_network(&net("n1", "10.62.0.0/24"))
        .await
        .unwrap();
    t.netd
        .create_sandbox(&SandboxCreate {
            endpoint: shaped(),
            ..sandbox("s1", "n1")
        })
        .await
        .unwrap();
    let eps = t.netd.store().read(store::all_endpoints).unwrap();
    assert!(eps[0].egress_ifb);
    let ifb = eps[0].ifb().to_string();
    t.k().add_foreign_link(&ifb, "ifb");
    ifb
}

#[tokio::test]
async fn removing_a_sandbox_deletes_its_endpoints_ifb() {
    let t = world().await;
    let ifb = shaped_sandbox(&t).await;
    t.netd.remove_sandbox("s1", false).await.unwrap();
    assert!(!t.k().world().links.contains_key(&ifb));
}

#[tokio::test]
async fn disconnecting_deletes_the_endpoints_ifb() {
    let t = world().await;
    let ifb = shaped_sandbox(&t).await;
    t.netd.disconnect("n1", "s1", false).await.unwrap();
    assert!(!t.k().world().links.contains_key(&ifb));
}

#[tokio::test]
async fn an_endpoint_without_a_limit_costs_no_ifb_call() {
    let t = world().await;
    t.netd
        .create_network(&net("n1", "10.62.0.0/24"))
        .await
        .unwrap();
    t.netd.create_sandbox(&sandbox("s1", "n1")).await.unwrap();
    let before = t.k().calls().len();
    t.netd.remove_sandbox("s1", false).await.unwrap();
    let calls = t.k().calls();
    assert!(
        !calls[before..].iter().any(|c| c.contains(" ndi")),
        "{calls:?}"
    );
}

/// The veth is what counts: an ifb that cannot be deleted is logged and
/// left to reconcile and CNI GC, and the removal stands.
#[tokio::test]
async fn an_ifb_that_will_not_go_does_not_fail_the_removal() {
    let t = world().await;
    let ifb = shaped_sandbox(&t).await;
    let before = t.k().calls().len();
    t.netd.remove_sandbox("s1", false).await.unwrap();
    let calls = t.k().calls();
    let at = calls[before..]
        .iter()
        .position(|c| *c == format!("delete_host_link {ifb}"))
        .unwrap_or_else(|| panic!("no ifb deletion in {calls:?}"));
    // Again, failing exactly that call.
    let t = world().await;
    let ifb = shaped_sandbox(&t).await;
    t.k().fail_after(at);
    t.netd.remove_sandbox("s1", false).await.unwrap();
    assert!(t.k().world().links.contains_key(&ifb));
    assert!(t.netd.store().read(store::sandboxes).unwrap().is_empty());
}
