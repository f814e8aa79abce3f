//! The test harness itself (`tests/common`): a missing peer fails naming
//! the installer, and a peer whose port is taken between choosing it and
//! binding it is started again on another port instead of failing or, worse,
//! passing its readiness probe against the stranger holding the port.

mod common;

use std::net::TcpListener;
use std::sync::Mutex;

use common::{Peer, Ready, get, pushrelay_binary};
use http::StatusCode;

/// A missing peer fails the test with the way to install it.
#[test]
#[should_panic(expected = "run scripts/install-peers.sh")]
fn harness_missing_peer_fails_naming_the_installer() {
    common::require_binary("pushrelay-test-no-such-peer");
}

/// Starts pushrelay (cache mode) with `ready`, after a stranger has taken
/// the first port the harness picks; the stranger keeps it throughout.
async fn start_with_first_port_taken(ready: Ready) -> (Peer, TcpListener) {
    let stranger: Mutex<Option<TcpListener>> = Mutex::new(None);
    let peer = Peer::start("pushrelay", &pushrelay_binary(), ready, |port, _| {
        let mut stranger = stranger.lock().unwrap();
        if stranger.is_none() {
            let taken = TcpListener::bind(("127.0.0.1", port)).expect("taking the port first");
            *stranger = Some(taken);
        }
        vec![format!("--web.listen-address=127.0.0.1:{port}")]
    })
    .await;
    let stranger = stranger.into_inner().unwrap().expect("the port was taken");
    (peer, stranger)
}

#[tokio::test]
async fn harness_a_port_taken_at_start_is_left_for_another_http_probe() {
    let (peer, stranger) = start_with_first_port_taken(Ready::Http("/-/healthy".into())).await;
    let taken = stranger.local_addr().unwrap().port();
    assert_ne!(peer.addr().port(), taken, "started again on another port");
    let reply = get(&format!("{}/-/healthy", peer.url())).await;
    assert_eq!(reply.status, StatusCode::OK);
}

#[tokio::test]
async fn harness_a_port_taken_at_start_is_left_for_another_listening_probe() {
    let (mut peer, stranger) = start_with_first_port_taken(Ready::Listening).await;
    assert_ne!(peer.addr().port(), stranger.local_addr().unwrap().port());
    assert!(peer.exited().is_none(), "{}", peer.log());
    let reply = get(&format!("{}/-/healthy", peer.url())).await;
    assert_eq!(reply.status, StatusCode::OK);
}
