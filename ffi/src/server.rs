//! Starting and stopping the git server (smart HTTP, HTTPS, SSH) from C. It runs on its own
//! threads: the calling thread returns at once.

use std::ffi::c_char;

use codekeep::server::{Server, ServerConfig};

use crate::error::boundary;
use crate::{check_out, codekeep_keep, codekeep_status, handle, json_arg, write_string};

/// A running git server. Start with codekeep_server_start(); stop and free with
/// codekeep_server_stop().
#[derive(Debug)]
pub struct codekeep_server {
    _private: [u8; 0],
}

/// Starts serving git for `keep` on background threads and writes the handle to `*out`.
/// `config_json` (NULL for the defaults) is `{"Http": "127.0.0.1:0" | null, "Ssh":
/// "127.0.0.1:0" | null, "Tls": {"CertificateChain": path, "PrivateKey": path}, "Threads": n}`:
/// port 0 picks a free port; an absent "Http" serves HTTP on a free loopback port; an absent
/// "Ssh" serves no SSH. Read the bound addresses with codekeep_server_describe().
///
/// Returns CODEKEEP_STATUS_INVALID_ARGUMENT for a bad configuration, CODEKEEP_STATUS_IO when
/// an address cannot be bound.
#[unsafe(no_mangle)]
pub extern "C" fn codekeep_server_start(
    keep: *const codekeep_keep,
    config_json: *const c_char,
    out: *mut *mut codekeep_server,
) -> codekeep_status {
    boundary(|| {
        check_out(out, "out")?;
        let config = if config_json.is_null() {
            ServerConfig::default()
        } else {
            ServerConfig::from_json(&json_arg(config_json, "config_json")?)?
        };
        let server = Server::start(handle::keep_ref(keep)?, &config)?;
        handle::write_out(out, handle::server_into_raw(server));
        Ok(())
    })
}

/// Writes what the server serves as JSON to `*json_out`: `{"HttpAddress", "HttpUrl",
/// "SshAddress", "SshUrl", "SshHostKey"}`, each present when that front end runs. Free it with
/// codekeep_string_free().
#[unsafe(no_mangle)]
pub extern "C" fn codekeep_server_describe(
    server: *const codekeep_server,
    json_out: *mut *mut c_char,
) -> codekeep_status {
    boundary(|| {
        check_out(json_out, "json_out")?;
        let description = handle::server_ref(server)?.describe();
        write_string(json_out, description.to_string())
    })
}

/// Stops the server (open requests get a few seconds to finish) and frees the handle. NULL is
/// a no-op.
#[unsafe(no_mangle)]
pub extern "C" fn codekeep_server_stop(server: *mut codekeep_server) {
    let _ = boundary(|| {
        handle::server_free(server);
        Ok(())
    });
}
