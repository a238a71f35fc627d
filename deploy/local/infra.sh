#!/usr/bin/env bash
# Local infrastructure for Sada without Docker: Kafka (KRaft, from Maven Central jars),
# FerretDB (SQLite backend, built with Go) and an SMTP sink (aiosmtpd -> Maildir).
#
# Usage: deploy/local/infra.sh up|down|status|logs|restart|reset [kafka|ferretdb|smtp|all]
#
#   up       download/build what is missing, start, wait until each answers a real request
#            (idempotent: a running, healthy component is left alone)
#   down     SIGTERM, wait up to 15 s, then SIGKILL; keeps data
#   status   running/stopped, pid, address, log file
#   logs     last 50 lines of the log(s)
#   restart  down, then up
#   reset    down, then delete runtime data ($RUN/data, $RUN/mail, the SMTP control file);
#            the download/build cache is kept
#
# Everything listens on 127.0.0.1 only. Environment:
#   SADA_CACHE_DIR  downloads and builds        (default $ROOT/.cache)
#   SADA_RUN_DIR    data, pids, logs, Maildir   (default $ROOT/.run)
#   SADA_PYTHON     Python with aiosmtpd, for the SMTP sink (default $ROOT/.venv/bin/python;
#                   the ready checks use only the standard library, python3 if that is missing)
#   SADA_KAFKA_PORT (9092)  SADA_KAFKA_CONTROLLER_PORT (9093)  SADA_MONGO_PORT (27017)
#   SADA_SMTP_PORT (1025)   SADA_FERRETDB_DEBUG_ADDR ("-" = off; e.g. 127.0.0.1:8088 for metrics)
#   SADA_FERRETDB_LOG_LEVEL (warn; pymongo's endSessions, unsupported by FerretDB 1.24, logs a
#                   WARN on every client close -- use error for a quiet log)
#   SADA_READY_TIMEOUT (90 seconds)   SADA_KAFKA_HEAP_OPTS ("-Xmx512m -Xms256m")
#   SADA_FERRETDB_USERNAME, SADA_FERRETDB_PASSWORD (unset: no authentication, as before). When
#                   both are set, FerretDB runs with authentication (`--test-enable-new-auth`)
#                   and creates that user in `admin` when its data directory is new: clients
#                   must then log in (mongodb://USER:PASSWORD@...), as with a real MongoDB
#   SADA_KAFKA_SASL_PORT (unset = off) adds a SASL_SSL listener (SCRAM-SHA-512) on that port, as
#                   production runs Kafka; the SCRAM user `sada` and its random password are in
#                   $RUN/kafka/sasl (username, password); the PLAINTEXT listener stays.
#   SADA_MONGO_TLS_PORT (unset = off) adds a TLS listener to FerretDB on that port (FerretDB 1.24
#                   with SQLite accepts any PLAIN credentials: the transport is real, the
#                   password check is not).
#   SADA_SMTP_STARTTLS_PORT (unset = off) adds an SMTP sink port that offers STARTTLS (as a
#                   relay on 587 does; the first port stays plain).
#   The TLS listeners use a local CA and a certificate for 127.0.0.1/localhost made once with
#   openssl and keytool and kept in $RUN/tls (clients trust $RUN/tls/ca.crt).
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$SCRIPT_DIR/../.." && pwd)
CACHE=${SADA_CACHE_DIR:-$ROOT/.cache}
RUN=${SADA_RUN_DIR:-$ROOT/.run}
PY=${SADA_PYTHON:-$ROOT/.venv/bin/python}

KAFKA_VERSION=4.1.1
FERRETDB_VERSION=v1.24.2

HOST=127.0.0.1
KAFKA_PORT=${SADA_KAFKA_PORT:-9092}
KAFKA_CONTROLLER_PORT=${SADA_KAFKA_CONTROLLER_PORT:-9093}
MONGO_PORT=${SADA_MONGO_PORT:-27017}
SMTP_PORT=${SADA_SMTP_PORT:-1025}
FERRETDB_DEBUG_ADDR=${SADA_FERRETDB_DEBUG_ADDR:--}
FERRETDB_LOG_LEVEL=${SADA_FERRETDB_LOG_LEVEL:-warn}
FERRETDB_USERNAME=${SADA_FERRETDB_USERNAME:-}
FERRETDB_PASSWORD=${SADA_FERRETDB_PASSWORD:-}
READY_TIMEOUT=${SADA_READY_TIMEOUT:-90}
KAFKA_HEAP_OPTS=${SADA_KAFKA_HEAP_OPTS:--Xmx512m -Xms256m}
KAFKA_SASL_PORT=${SADA_KAFKA_SASL_PORT:-}
SASL_DIR=$RUN/kafka/sasl
MONGO_TLS_PORT=${SADA_MONGO_TLS_PORT:-}
SMTP_STARTTLS_PORT=${SADA_SMTP_STARTTLS_PORT:-}
TLS_DIR=$RUN/tls
SCRAM_USER=sada
STOP_TIMEOUT=15

KAFKA_LIBS=$CACHE/kafka/libs-$KAFKA_VERSION
FERRETDB_BIN=$CACHE/bin/ferretdb
COMPONENTS=(kafka ferretdb smtp)

log() { printf '%s\n' "$*"; }
err() { printf 'infra.sh: %s\n' "$*" >&2; }
die() {
  err "$*"
  exit 1
}

usage() {
  sed -n '4,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
  exit 2
}

# --- per-component facts ---------------------------------------------------------------------

ports_of() {
  case $1 in
    kafka) echo "$KAFKA_PORT $KAFKA_CONTROLLER_PORT $KAFKA_SASL_PORT" ;;
    ferretdb) echo "$MONGO_PORT $MONGO_TLS_PORT" ;;
    smtp) echo "$SMTP_PORT $SMTP_STARTTLS_PORT" ;;
  esac
}

address_of() {
  case $1 in
    kafka)
      local sasl=""
      [[ -n $KAFKA_SASL_PORT ]] && sasl=", SASL_SSL $HOST:$KAFKA_SASL_PORT (CA $TLS_DIR/ca.crt, user in $SASL_DIR)"
      echo "kafka://$HOST:$KAFKA_PORT (controller $HOST:$KAFKA_CONTROLLER_PORT$sasl)"
      ;;
    ferretdb)
      local tls=""
      [[ -n $MONGO_TLS_PORT ]] && tls=" (TLS $HOST:$MONGO_TLS_PORT, CA $TLS_DIR/ca.crt)"
      echo "mongodb://$HOST:$MONGO_PORT/$tls"
      ;;
    smtp)
      local tls=""
      [[ -n $SMTP_STARTTLS_PORT ]] && tls=", STARTTLS $HOST:$SMTP_STARTTLS_PORT"
      echo "smtp://$HOST:$SMTP_PORT (Maildir $RUN/mail$tls)"
      ;;
  esac
}

# A string that must appear in /proc/PID/cmdline, so a recycled pid is not mistaken for ours.
cmdline_marker() {
  case $1 in
    kafka) echo "kafka.Kafka" ;;
    ferretdb) echo "$FERRETDB_BIN" ;;
    smtp) echo "smtp_sink.py" ;;
  esac
}

pid_file() { echo "$RUN/pids/$1.pid"; }
log_file() { echo "$RUN/logs/$1.log"; }

# --- process helpers ---------------------------------------------------------------------------

# Prints the pid and succeeds when the component's recorded process is alive.
running_pid() {
  local f pid
  f=$(pid_file "$1")
  [[ -f $f ]] || return 1
  pid=$(<"$f")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$(cmdline_marker "$1")" || return 1
  echo "$pid"
}

tcp_open() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

# Ready check: one real request, with nothing but the Python standard library (quick to start, no
# venv needed). Kafka: MetadataRequest v4 must list a broker (Kafka 4 dropped v0-v3). FerretDB:
# OP_MSG {ping: 1} must answer ok: 1 (a raw ping also avoids pymongo's endSessions on close, which
# FerretDB 1.24 does not know and logs as a WARN). SMTP sink: EHLO must answer 250 with SMTPUTF8.
check() {
  local py=python3 port
  [[ -x $PY ]] && py=$PY
  port=$(ports_of "$1" | cut -d' ' -f1)
  tcp_open "$port" || return 1
  "$py" - "$1" "$HOST" "$port" <<'EOF' 2>/dev/null
import smtplib
import socket
import struct
import sys


def recv_exactly(s: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise OSError("connection closed")
        buf += chunk
    return buf


def kafka(host: str, port: int) -> bool:
    client = b"sada-infra"
    req = struct.pack(">hhih", 3, 4, 1, len(client)) + client + struct.pack(">i?", -1, False)
    with socket.create_connection((host, port), timeout=3) as s:
        s.sendall(struct.pack(">i", len(req)) + req)
        _size, corr, _throttle, brokers = struct.unpack(">iiii", recv_exactly(s, 16))
    return corr == 1 and brokers > 0


def ferretdb(host: str, port: int) -> bool:
    doc = b"\x10ping\x00" + struct.pack("<i", 1) + b"\x02$db\x00" + struct.pack("<i", 6) + b"admin\x00"
    msg = struct.pack("<IB", 0, 0) + struct.pack("<i", len(doc) + 5) + doc + b"\x00"
    with socket.create_connection((host, port), timeout=3) as s:
        s.sendall(struct.pack("<iiii", 16 + len(msg), 1, 0, 2013) + msg)
        head = recv_exactly(s, 4)
        reply = head + recv_exactly(s, struct.unpack("<i", head)[0] - 4)
    return b"\x01ok\x00" + struct.pack("<d", 1.0) in reply


def smtp(host: str, port: int) -> bool:
    with smtplib.SMTP(host, port, timeout=3) as s:
        code, _ = s.ehlo()
        return code == 250 and s.has_extn("smtputf8")


name, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
try:
    ok = {"kafka": kafka, "ferretdb": ferretdb, "smtp": smtp}[name](host, port)
except (OSError, struct.error):
    ok = False
sys.exit(0 if ok else 1)
EOF
}

# Starts "$@" detached (own session, stdin closed, output appended to the log) and records its
# pid: the child writes its own pid before exec, so the pid file names the real process.
spawn() {
  local name=$1
  shift
  local logf pidf
  logf=$(log_file "$name")
  pidf=$(pid_file "$name")
  printf '\n===== %s: starting %s =====\n' "$(date -Is)" "$name" >>"$logf"
  # shellcheck disable=SC2016 # expanded by the child shell
  setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' spawn "$pidf" "$@" </dev/null >>"$logf" 2>&1 9>&- &
  local i
  for i in $(seq 50); do
    [[ -s $pidf ]] && return 0
    sleep 0.1
  done
  die "$name: no pid file after start"
}

stop_one() {
  local name=$1 pid i
  if ! pid=$(running_pid "$name"); then
    rm -f "$(pid_file "$name")"
    log "$name: not running"
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < STOP_TIMEOUT * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    err "$name: still alive after ${STOP_TIMEOUT}s, sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.2
  fi
  rm -f "$(pid_file "$name")"
  log "$name: stopped (pid $pid)"
}

# --- TLS material (SASL_SSL Kafka listener, FerretDB TLS listener) ------------------------------

# Made once and kept in $TLS_DIR: a local CA and a server key and certificate (SAN 127.0.0.1 and
# localhost, so clients verify the hostname as in production), also as a PKCS12 keystore for
# the broker, checked with keytool (the JVM, not only openssl, must read it).
ensure_tls() {
  [[ -s $TLS_DIR/server.p12 && -s $TLS_DIR/ca.crt ]] && return 0
  command -v openssl >/dev/null || die "tls: openssl not found (needed for the TLS listeners)"
  command -v keytool >/dev/null || die "tls: keytool not found (needed for the TLS listeners)"
  log "tls: making a local CA and server certificate in $TLS_DIR"
  rm -rf "$TLS_DIR"
  mkdir -p "$TLS_DIR"
  chmod 700 "$TLS_DIR"
  local out
  out=$(make_tls_material "$TLS_DIR" 2>&1) || {
    printf '%s\n' "$out" >&2
    rm -rf "$TLS_DIR"
    die "tls: could not make the certificates"
  }
}

make_tls_material() {
  local d=$1
  set -e
  umask 077
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=Sada local CA" \
    -keyout "$d/ca.key" -out "$d/ca.crt"
  openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout "$d/server.key" -out "$d/server.csr"
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >"$d/server.ext"
  openssl x509 -req -in "$d/server.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial \
    -days 3650 -extfile "$d/server.ext" -out "$d/server.crt"
  openssl rand -hex 16 >"$d/keystore-password"
  openssl pkcs12 -export -name server -in "$d/server.crt" -inkey "$d/server.key" \
    -certfile "$d/ca.crt" -passout "file:$d/keystore-password" -out "$d/server.p12.tmp"
  keytool -list -storetype PKCS12 -keystore "$d/server.p12.tmp" \
    -storepass "$(<"$d/keystore-password")" >/dev/null
  mv "$d/server.p12.tmp" "$d/server.p12"
  rm -f "$d/server.csr" "$d/server.ext" "$d/ca.srl"
}

# The SCRAM user's name and random password, kept in $SASL_DIR for clients (and tests) to read.
ensure_scram_secret() {
  [[ -s $SASL_DIR/password ]] && return 0
  mkdir -p "$SASL_DIR"
  chmod 700 "$SASL_DIR"
  umask 077
  echo "$SCRAM_USER" >"$SASL_DIR/username"
  openssl rand -hex 24 >"$SASL_DIR/password"
}

# --- Kafka -------------------------------------------------------------------------------------

java_bin() {
  if [[ -n ${JAVA_HOME:-} ]]; then echo "$JAVA_HOME/bin/java"; else echo java; fi
}

ensure_kafka() {
  local pom=$SCRIPT_DIR/kafka/pom.xml marker=$KAFKA_LIBS/.complete want
  command -v "$(java_bin)" >/dev/null || die "kafka: java not found (Java 17+ needed)"
  want=$(sha256sum "$pom" | cut -d' ' -f1)
  if [[ -f $marker && $(<"$marker") == "$want" ]]; then return 0; fi
  command -v mvn >/dev/null || die "kafka: mvn not found (needed once to fetch Kafka $KAFKA_VERSION)"
  log "kafka: fetching Kafka $KAFKA_VERSION jars from Maven Central into $KAFKA_LIBS"
  rm -rf "$KAFKA_LIBS"
  mkdir -p "$KAFKA_LIBS"
  local out
  if ! out=$(mvn -q -B -f "$pom" dependency:copy-dependencies -DoutputDirectory="$KAFKA_LIBS" 2>&1); then
    printf '%s\n' "$out" >&2
    die "kafka: mvn dependency:copy-dependencies failed"
  fi
  [[ -f $KAFKA_LIBS/kafka_2.13-$KAFKA_VERSION.jar ]] || die "kafka: jar missing after mvn"
  echo "$want" >"$marker"
}

# The java command line shared by the storage tool and the server (array: paths may have spaces).
kafka_java() {
  local -a heap
  read -r -a heap <<<"$KAFKA_HEAP_OPTS"
  KAFKA_JAVA=("$(java_bin)" "${heap[@]}" -XX:+UseG1GC -XX:MaxGCPauseMillis=20
    -Djava.awt.headless=true "-Dlog4j2.configurationFile=$SCRIPT_DIR/kafka/log4j2.properties"
    -cp "$KAFKA_LIBS/*")
}

write_kafka_config() {
  mkdir -p "$RUN/kafka" "$RUN/data/kafka"
  local listeners="PLAINTEXT://$HOST:$KAFKA_PORT,CONTROLLER://$HOST:$KAFKA_CONTROLLER_PORT"
  local protocols="CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"
  if [[ -n $KAFKA_SASL_PORT ]]; then
    listeners+=",SASL_SSL://$HOST:$KAFKA_SASL_PORT"
    protocols+=",SASL_SSL:SASL_SSL"
  fi
  cat >"$RUN/kafka/server.properties" <<EOF
# Generated by deploy/local/infra.sh on every start; edit the script, not this file.
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=$HOST:$KAFKA_CONTROLLER_PORT
listeners=$listeners
advertised.listeners=$listeners
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=$protocols
log.dirs=$RUN/data/kafka
num.partitions=3
auto.create.topics.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=3
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=3
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
EOF
  [[ -z $KAFKA_SASL_PORT ]] && return 0
  cat >>"$RUN/kafka/server.properties" <<EOF
# SASL_SSL listener (SADA_KAFKA_SASL_PORT): TLS with the local CA, SCRAM-SHA-512 users only.
listener.name.sasl_ssl.sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.ssl.keystore.type=PKCS12
listener.name.sasl_ssl.ssl.keystore.location=$TLS_DIR/server.p12
listener.name.sasl_ssl.ssl.keystore.password=$(<"$TLS_DIR/keystore-password")
EOF
  chmod 600 "$RUN/kafka/server.properties"
}

# Creates (or resets) the SCRAM-SHA-512 user through the PLAINTEXT listener (the admin API,
# as kafka-configs.sh does); idempotent, so it runs after every start of the broker.
add_scram_user() {
  kafka_java
  "${KAFKA_JAVA[@]}" kafka.admin.ConfigCommand --bootstrap-server "$HOST:$KAFKA_PORT" --alter \
    --entity-type users --entity-name "$(<"$SASL_DIR/username")" \
    --add-config "SCRAM-SHA-512=[password=$(<"$SASL_DIR/password")]" >>"$(log_file kafka)" 2>&1 ||
    die "kafka: could not create the SCRAM user, see $(log_file kafka)"
  log "kafka: SCRAM-SHA-512 user $(<"$SASL_DIR/username") ready on SASL_SSL $HOST:$KAFKA_SASL_PORT"
}

# True when SADA_KAFKA_SASL_PORT, SADA_MONGO_TLS_PORT or SADA_SMTP_STARTTLS_PORT ask for a listener
# the running process was not started with (it is then restarted).
lacks_listener() {
  local pid=$2
  case $1 in
    kafka) [[ -n $KAFKA_SASL_PORT ]] &&
      ! grep -q "SASL_SSL://$HOST:$KAFKA_SASL_PORT" "$RUN/kafka/server.properties" 2>/dev/null ;;
    ferretdb) [[ -n $MONGO_TLS_PORT ]] &&
      ! tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "--listen-tls=$HOST:$MONGO_TLS_PORT" ;;
    smtp) [[ -n $SMTP_STARTTLS_PORT ]] &&
      ! tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "--starttls-port $SMTP_STARTTLS_PORT" ;;
    *) return 1 ;;
  esac
}

format_kafka_storage() {
  [[ -f $RUN/data/kafka/meta.properties ]] && return 0
  local cluster_id
  kafka_java
  cluster_id=$("${KAFKA_JAVA[@]}" kafka.tools.StorageTool random-uuid | tail -n 1)
  [[ $cluster_id =~ ^[A-Za-z0-9_-]{22}$ ]] || die "kafka: bad cluster id from StorageTool: $cluster_id"
  log "kafka: formatting $RUN/data/kafka (cluster id $cluster_id)"
  "${KAFKA_JAVA[@]}" kafka.tools.StorageTool format --standalone -t "$cluster_id" \
    -c "$RUN/kafka/server.properties" >>"$(log_file kafka)" 2>&1 ||
    die "kafka: storage format failed, see $(log_file kafka)"
}

start_kafka() {
  if [[ -n $KAFKA_SASL_PORT ]]; then
    ensure_tls
    ensure_scram_secret
  fi
  write_kafka_config
  format_kafka_storage
  kafka_java
  spawn kafka "${KAFKA_JAVA[@]}" kafka.Kafka "$RUN/kafka/server.properties"
}

# --- FerretDB ----------------------------------------------------------------------------------

# `go install ...ferretdb@v1.24.2` builds a binary that panics at start ("Invalid
# build/version/version.txt"): the version file is generated by FerretDB's release tooling and
# is not in the module. So copy the module source, write the file, and build from the copy.
ensure_ferretdb() {
  if [[ -x $FERRETDB_BIN ]] && "$FERRETDB_BIN" --version 2>/dev/null | grep -qx "version: $FERRETDB_VERSION"; then
    return 0
  fi
  command -v go >/dev/null || die "ferretdb: go not found (needed once to build FerretDB)"
  log "ferretdb: building FerretDB $FERRETDB_VERSION into $FERRETDB_BIN"
  local mod_dir src=$CACHE/src/ferretdb-$FERRETDB_VERSION
  mkdir -p "$CACHE/src" "$CACHE/bin"
  mod_dir=$(cd "$CACHE" && GOWORK=off GOFLAGS=-mod=mod go mod download -json \
    "github.com/FerretDB/FerretDB@$FERRETDB_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [[ -n $mod_dir && -d $mod_dir ]] || die "ferretdb: go mod download failed"
  rm -rf "$src"
  cp -r "$mod_dir" "$src"
  chmod -R u+w "$src"
  echo "$FERRETDB_VERSION" >"$src/build/version/version.txt"
  (cd "$src" && GOWORK=off go build -buildvcs=false -o "$FERRETDB_BIN.tmp" ./cmd/ferretdb) ||
    die "ferretdb: go build failed"
  mv "$FERRETDB_BIN.tmp" "$FERRETDB_BIN"
}

start_ferretdb() {
  mkdir -p "$RUN/data/ferretdb" "$RUN/data/ferretdb-state"
  local auth=()
  if [[ -n $FERRETDB_USERNAME && -n $FERRETDB_PASSWORD ]]; then
    # The setup user is created only on a new backend; later starts keep the stored users.
    auth=(--test-enable-new-auth "--setup-username=$FERRETDB_USERNAME"
      "--setup-password=$FERRETDB_PASSWORD" --setup-database=admin)
  fi
  local -a tls=()
  if [[ -n $MONGO_TLS_PORT ]]; then
    ensure_tls
    tls=("--listen-tls=$HOST:$MONGO_TLS_PORT" "--listen-tls-cert-file=$TLS_DIR/server.crt"
      "--listen-tls-key-file=$TLS_DIR/server.key")
  fi
  # WAL (FerretDB's default) with synchronous=NORMAL: a commit survives a crash of any process,
  # and only an OS crash or power loss can take the last ones back. That is the right trade for
  # a local stand-in; production runs MongoDB with its own journal.
  # secure_delete: SQLite overwrites deleted content (a destroyed data key, docs/privacy.md)
  # instead of leaving it in free pages; FerretDB passes every `_pragma` to the driver.
  spawn ferretdb "$FERRETDB_BIN" \
    --handler=sqlite \
    "--sqlite-url=file:$RUN/data/ferretdb/?_pragma=synchronous(normal)&_pragma=secure_delete(on)" \
    "--listen-addr=$HOST:$MONGO_PORT" "${tls[@]}" \
    "--state-dir=$RUN/data/ferretdb-state" \
    "--debug-addr=$FERRETDB_DEBUG_ADDR" \
    --telemetry=disable \
    "--log-level=$FERRETDB_LOG_LEVEL" \
    "${auth[@]}"
}

# --- SMTP sink ---------------------------------------------------------------------------------

ensure_smtp() {
  [[ -x $PY ]] || die "smtp: no Python at $PY (create the project venv, or set SADA_PYTHON)"
  "$PY" -c "import aiosmtpd" 2>/dev/null || die "smtp: $PY cannot import aiosmtpd (install the dev dependencies)"
}

start_smtp() {
  mkdir -p "$RUN/mail/cur" "$RUN/mail/new" "$RUN/mail/tmp"
  local -a tls=()
  if [[ -n $SMTP_STARTTLS_PORT ]]; then
    ensure_tls
    tls=(--starttls-port "$SMTP_STARTTLS_PORT" --tls-cert "$TLS_DIR/server.crt" --tls-key "$TLS_DIR/server.key")
  fi
  SADA_RUN_DIR=$RUN SADA_SMTP_PORT=$SMTP_PORT spawn smtp "$PY" -u "$SCRIPT_DIR/smtp_sink.py" \
    --host "$HOST" --port "$SMTP_PORT" --maildir "$RUN/mail" \
    --control-file "$RUN/smtp-control.json" "${tls[@]}"
}

# --- actions -----------------------------------------------------------------------------------

# Serialises up/down/restart/reset: two concurrent `up`s would otherwise start two brokers on one
# data directory. The lock is fd 9, which spawn() closes so the daemons do not inherit it.
take_lock() {
  mkdir -p "$RUN"
  exec 9>"$RUN/.infra.lock"
  if ! flock -n 9; then
    log "waiting for another infra.sh to finish (lock $RUN/.infra.lock)..."
    flock -w 600 9 || die "could not take the lock $RUN/.infra.lock"
  fi
}

# Start the component unless it is already running. Sets STARTED_<name>=1.
launch_one() {
  local name=$1 pid port
  if pid=$(running_pid "$name"); then
    if lacks_listener "$name" "$pid"; then
      log "$name: running without the TLS listener asked for (SADA_KAFKA_SASL_PORT, SADA_MONGO_TLS_PORT, SADA_SMTP_STARTTLS_PORT); restarting it"
      stop_one "$name"
    else
      return 0
    fi
  fi
  rm -f "$(pid_file "$name")"
  for port in $(ports_of "$name"); do
    if tcp_open "$port"; then
      die "$name: port $port on $HOST is already in use by another process"
    fi
  done
  # Where this run's output starts in the (appended) log, for error reports.
  printf -v "LOG_OFFSET_$name" %d $(($(stat -c %s "$(log_file "$name")" 2>/dev/null || echo 0) + 1))
  "start_$name"
  printf -v "STARTED_$name" 1
}

# For an error report: the end of what this start wrote to the log, without Java stack frames.
log_excerpt() {
  local var="LOG_OFFSET_$1"
  tail -c "+${!var:-1}" "$(log_file "$1")" 2>/dev/null |
    grep -vE '^[[:space:]]+(at |\.\.\. [0-9]+ more)' | tail -n 40 >&2 || true
}

# Wait until the component answers a real request.
wait_ready() {
  local name=$1 pid start=$SECONDS started_var="STARTED_$1"
  pid=$(running_pid "$name") || {
    err "$name: not running"
    tail -n 30 "$(log_file "$name")" >&2 || true
    return 1
  }
  while ! check "$name"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$(pid_file "$name")"
      err "$name: process $pid exited during start-up; last lines of $(log_file "$name"):"
      log_excerpt "$name"
      return 1
    fi
    if ((SECONDS - start >= READY_TIMEOUT)); then
      err "$name: not ready after ${READY_TIMEOUT}s; pid $pid left running for inspection" \
        "(stop it: $0 down $name); last lines of $(log_file "$name"):"
      log_excerpt "$name"
      return 1
    fi
    sleep 0.5
  done
  if [[ -n ${!started_var:-} ]]; then
    log "$name: ready (pid $pid) at $(address_of "$name")"
  else
    log "$name: already running (pid $pid) at $(address_of "$name")"
  fi
}

do_up() {
  local name rc=0 t0=$SECONDS
  mkdir -p "$CACHE" "$RUN/pids" "$RUN/logs" "$RUN/data"
  # Fetch/build/check prerequisites of everything before starting anything.
  for name in "$@"; do
    running_pid "$name" >/dev/null || "ensure_$name"
  done
  # Start everything, then wait: Kafka's slow JVM start overlaps the others.
  for name in "$@"; do launch_one "$name"; done
  for name in "$@"; do wait_ready "$name" || rc=1; done
  ((rc == 0)) || die "up failed (see the log lines above)"
  if [[ -n ${STARTED_kafka:-} && -n $KAFKA_SASL_PORT ]]; then add_scram_user; fi
  log "up: done in $((SECONDS - t0))s"
}

do_down() {
  local name i
  # Reverse order: the SMTP sink and FerretDB first, Kafka (slowest to stop) last.
  for ((i = $# ; i >= 1; i--)); do
    name=${!i}
    stop_one "$name"
  done
}

do_status() {
  local name pid state
  for name in "$@"; do
    if pid=$(running_pid "$name"); then
      if tcp_open "$(ports_of "$name" | cut -d' ' -f1)"; then state=running; else state="running (not listening yet)"; fi
    else
      state=stopped
      pid=-
    fi
    printf '%-9s %-28s pid %-8s %s\n' "$name" "$state" "$pid" "$(address_of "$name")"
    printf '%-9s log %s\n' "" "$(log_file "$name")"
  done
}

do_logs() {
  local name f
  for name in "$@"; do
    f=$(log_file "$name")
    (($# > 1)) && printf '==> %s <==\n' "$f"
    if [[ -f $f ]]; then tail -n 50 "$f"; else log "(no log yet)"; fi
    (($# > 1)) && echo
  done
  return 0
}

do_reset() {
  do_down "$@"
  # The archive's signed checkpoints describe the database deleted here: kept, they would make
  # `sada audit verify --checkpoints` report the new, empty archive as truncated.
  rm -rf "$RUN/data" "$RUN/mail" "$RUN/smtp-control.json" "$RUN/witness"
  log "reset: deleted $RUN/data, $RUN/mail, $RUN/witness and the SMTP control file (cache kept: $CACHE)"
}

main() {
  (($# >= 1 && $# <= 2)) || usage
  local action=$1 target=${2:-all}
  local -a names
  case $target in
    all) names=("${COMPONENTS[@]}") ;;
    kafka | ferretdb | smtp) names=("$target") ;;
    *) usage ;;
  esac
  case $action in
    up | down | restart | reset) take_lock ;;
  esac
  case $action in
    up) do_up "${names[@]}" ;;
    down) do_down "${names[@]}" ;;
    status) do_status "${names[@]}" ;;
    logs) do_logs "${names[@]}" ;;
    restart)
      do_down "${names[@]}"
      do_up "${names[@]}"
      ;;
    reset)
      [[ $target == all ]] || die "reset works on all components only"
      do_reset "${names[@]}"
      ;;
    -h | --help | help) usage ;;
    *) usage ;;
  esac
}

main "$@"
