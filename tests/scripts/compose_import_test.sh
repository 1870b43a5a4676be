#!/usr/bin/env bash
# `reconcile import compose` on real compose files written by others
# (tests/testdata/compose/awesome-compose, unmodified), against the real
# Docker Engine and Debian's docker-compose (1.29):
#
#  - every copied file is imported; a refusal is reported with its reason
#    (a stack is expected to be refused only for the keys listed below, or
#    for fields this build of reconcile does not have yet);
#  - each imported stack runs twice from the same file: `docker-compose -p
#    <prefix>c up -d --no-build`, then `reconcile apply` of the imported
#    documents (agents prefixed, volumes and networks under <prefix>r); the
#    containers are compared field by field through the Engine API's inspect:
#    image, entrypoint and command, env, mounts, ports, exposed ports,
#    networks and aliases, restart policy, health check, user, capabilities,
#    read-only root, limits. Every difference is printed; one that is not a
#    documented "mapped differently" fails the test;
#  - data survives: a file written into the named volume of an imported
#    database agent is still there after the agent's image changes and after
#    `reconcile rollback`; `destroy` leaves the volume.
#
# Images cannot be pulled here: one stand-in image (FROM scratch, busybox
# -static; its entrypoint accepts any arguments and sleeps; the health-check
# programs the files use exit 0) is tagged under every image name the files
# use, and untagged at the end. Services with `build:` run the stand-in too
# (compose: tagged as its built image; reconcile: the agent's build is
# replaced by the image), and their image comparison is skipped, saying so:
# the build contexts are not copied.
#
# Needs: $RECONCILE, $SOURCE_DIR, $BUILD_DIR, docker-compose, python3 with
# PyYAML (python3-yaml, a dependency of docker-compose). Removes only what it
# created (names with a random per-run prefix; the tags it added).
set -uo pipefail

: "${RECONCILE:?}" "${SOURCE_DIR:?}"
bash "$SOURCE_DIR/scripts/ensure-dockerd.sh" >/dev/null || { echo "no Docker Engine"; exit 1; }
command -v docker-compose >/dev/null || { echo "FAIL - docker-compose is missing (apt-get install docker-compose)"; exit 1; }
python3 -c 'import yaml' 2>/dev/null || { echo "FAIL - python3 PyYAML is missing (python3-yaml)"; exit 1; }

corpus="$SOURCE_DIR/tests/testdata/compose/awesome-compose"
helper="$SOURCE_DIR/tests/scripts/compose_compare.py"
work="$(mktemp -d)"
p="ci$(printf '%04x' $((RANDOM % 65536)))"  # per-run prefix
standin="$p-standin:1"
standin2="$p-standin:2"
tags_file="$work/tags"
: >"$tags_file"
passed=0
failed=0
export HOME="$work/home"  # ~/ binds (minecraft) land here, for both tools
mkdir -p "$HOME"
# What postgresql-pgadmin and pihole read from .env in their repository.
export POSTGRES_USER=pg POSTGRES_PW=pg-secret-$RANDOM POSTGRES_DB=app PGADMIN_MAIL=a@b.c \
  PGADMIN_PW=pga-$RANDOM TIMEZONE=UTC

ok() { passed=$((passed + 1)); echo "ok   - $1"; }
bad() { failed=$((failed + 1)); echo "FAIL - $1"; [[ -n "${2:-}" ]] && sed 's/^/       /' <<<"$2"; }

cleanup() {
  for d in "$work"/run/*/; do
    [[ -f "$d/cproject" ]] && (cd "$d" && docker-compose -p "$(cat cproject)" -f "$(cat cfile)" down -v \
      --remove-orphans >/dev/null 2>&1)
    [[ -d "$d/tree" ]] && "$RECONCILE" --state "$d/state" destroy "$d/tree" --auto-approve \
      --no-color >/dev/null 2>&1
  done
  # Only ours, by the per-run prefix.
  docker ps -aq --filter "name=^/$p" | xargs -r docker rm -f >/dev/null 2>&1
  docker volume ls -q --filter "name=$p" | grep "^$p" | xargs -r docker volume rm >/dev/null 2>&1
  docker network ls -q --filter "name=$p" | xargs -r docker network rm >/dev/null 2>&1
  while read -r t; do [[ -n "$t" ]] && docker rmi "$t" >/dev/null 2>&1; done <"$tags_file"
  docker rmi "$standin" "$standin2" >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT

# --- the stand-in image -------------------------------------------------
source "$SOURCE_DIR/tests/fixtures/compose_standin.sh"
if ! out="$(build_standin "$standin" "$work")"; then
  echo "FAIL - cannot build the stand-in image: $out"
  exit 1
fi
docker tag "$standin" "$standin2"
ok "stand-in image $standin built"
tag() { tag_standin "$standin" "$1" "$tags_file"; }

# --- the command: all or nothing, never overwriting --------------------
g="$work/cli"
mkdir -p "$g"
cp "$corpus/gitea-postgres/compose.yaml" "$g/compose.yaml"
out="$("$RECONCILE" import compose "$g/compose.yaml" --dry-run 2>/dev/null)"
if grep -q '^kind: "Agent"' <<<"$out" && [[ "$(ls -A "$g")" == compose.yaml ]]; then
  ok "--dry-run prints the documents and writes nothing"
else
  bad "--dry-run" "$out"
fi
"$RECONCILE" import compose "$g/compose.yaml" --out "$g/out" >/dev/null 2>&1 && ok "import writes into --out" ||
  bad "import into --out failed"
before="$(cat "$g/out"/*.yaml | sha256sum)"
"$RECONCILE" import compose "$g/compose.yaml" --out "$g/out" >/dev/null 2>&1 &&
  ok "importing again over identical files succeeds" || bad "importing again over identical files failed"
echo "# edited" >>"$g/out/agent-db.yaml"
out="$("$RECONCILE" import compose "$g/compose.yaml" --out "$g/out" 2>&1)"
code=$?
if [[ $code -eq 1 ]] && grep -q 'agent-db.yaml exists with other content' <<<"$out" &&
  grep -q '^# edited' "$g/out/agent-db.yaml"; then
  ok "a file with other content is refused, nothing written (exit $code)"
else
  bad "overwrite: exit $code" "$out"
fi
printf 'services:\n  web:\n    image: x\n    privileged: true\n' >"$g/bad.yaml"
out="$("$RECONCILE" import compose "$g/bad.yaml" --out "$g/bad-out" 2>&1)"
code=$?
if [[ $code -eq 1 && ! -e "$g/bad-out" ]] && grep -q 'bad.yaml:4:5: error: services.web.privileged' <<<"$out"; then
  ok "a refused key: exit 1 at file:line:column, nothing written"
else
  bad "refused key: exit $code" "$out"
fi
canary="canary-$RANDOM$RANDOM"
printf 'services:\n  web:\n    image: x\n    environment:\n      API_TOKEN: %s\n' "$canary" >"$g/secret.yaml"
out="$("$RECONCILE" import compose "$g/secret.yaml" --out "$g/secret-out" 2>&1)"
if ! grep -rq "$canary" "$g/secret-out" && ! grep -q "$canary" <<<"$out" &&
  grep -q 'web.API_TOKEN' <<<"$out"; then
  ok "a secret value is never written nor printed; the file to create is named"
else
  bad "secret canary" "$out"
fi

# --- data survives an image change and a rollback; destroy keeps it ----
# Run on the gitea-postgres stack right after its comparison.
data_test() {
  db="${gitea_ap:-none-}db"
  if [[ -f "$run/tree/agent-$db.yaml" ]]; then
    R=("$RECONCILE" --state "$run/state" --secrets "$run/secrets")
    cid() { docker ps -q --filter "label=reconcile.dev/agent=$db" | head -1; }
    vol="${gitea_rp}_db_data"
    if docker exec "$(cid)" sh -c 'echo kept-across-replace > /var/lib/postgresql/data/canary'; then
      ok "wrote into volume $vol"
    else
      bad "cannot write into the db agent's volume"
    fi
    first="$(cid)"
    sed -i "s|image: \"postgres:alpine\"|image: \"$standin2\"|" "$run/tree/agent-$db.yaml"
    out="$("${R[@]}" apply "$run/tree" --auto-approve --no-color 2>&1)" || bad "apply of the new image" "$out"
    [[ "$(cid)" != "$first" ]] && ok "the image change replaced the container" ||
      bad "the image change did not replace the container" "$out"
    got="$(docker exec "$(cid)" cat /var/lib/postgresql/data/canary 2>&1)"
    [[ "$got" == kept-across-replace ]] && ok "data kept across the image change" ||
      bad "data lost across the image change: $got"
    out="$("${R[@]}" rollback "$run/tree" --auto-approve --no-color 2>&1)" || bad "rollback" "$out"
    image="$(docker inspect -f '{{.Config.Image}}' "$(cid)" 2>/dev/null)"
    [[ "$image" == postgres:alpine* ]] && ok "rollback runs postgres:alpine again" ||
      bad "rollback runs '$image'" "$out"
    got="$(docker exec "$(cid)" cat /var/lib/postgresql/data/canary 2>&1)"
    [[ "$got" == kept-across-replace ]] && ok "data kept across the rollback" ||
      bad "data lost across the rollback: $got"
    out="$("${R[@]}" destroy "$run/tree" --auto-approve --no-color 2>&1)" || bad "destroy" "$out"
    if docker volume inspect "$vol" >/dev/null 2>&1; then
      ok "destroy kept volume $vol (reclaim: retain)"
    else
      bad "destroy removed volume $vol" "$out"
    fi
  else
    bad "gitea-postgres was not imported; the data test did not run"
  fi
}

# Keys for which a stack is expected to be refused (what reconcile cannot honour).
declare -A expect_refused=(
  [plex]="network_mode: host"
  [pihole-cloudflared-DoH]="a fixed container address (ipv4_address)"
  [elasticsearch-logstash-kibana]="environment names with a dot (discovery.type)"
  [prometheus-grafana]="two mounts on /prometheus (docker-compose 1.29 refuses the file too)"
)

imported=0
clean_stacks=()
refused_stacks=()
applied=0
mkdir -p "$work/run"
n=0
for file in "$corpus"/*/compose.yaml "$corpus"/*/docker-compose.yaml; do
  [[ -f "$file" ]] || continue
  stack="$(basename "$(dirname "$file")")"
  name="$(basename "$file")"
  run="$work/run/$stack"
  n=$((n + 1))
  # Per stack: agents, volumes and networks of one stack never meet another's.
  rp="${p}r$n" cp_="${p}c$n" ap="$p-$n-"
  [[ "$stack" == gitea-postgres ]] && { gitea_rp=$rp; gitea_ap=$ap; }
  mkdir -p "$run/stack"
  cp "$file" "$run/stack/$name"
  python3 "$helper" prepare "$run/stack/$name" "$run/stack"
  echo "# $stack"
  out="$(cd "$run/stack" && "$RECONCILE" import compose "$name" --out "$run/tree" \
    --project "$rp" --agent-prefix "$ap" 2>&1)"
  code=$?
  if [[ $code -ne 0 ]]; then
    refused_stacks+=("$stack")
    errors="$(grep ': error: ' <<<"$out")"
    if [[ -n "${expect_refused[$stack]:-}" ]]; then
      ok "$stack: refused as expected (${expect_refused[$stack]})"
      sed 's/^/       /' <<<"$errors"
    elif ! grep -v 'which this build of reconcile does not have yet' <<<"$errors" | grep -q .; then
      ok "$stack: refused only for fields this build does not have yet"
      sed 's/^/       /' <<<"$errors"
    else
      bad "$stack: refused" "$out"
    fi
    [[ -d "$run/tree" ]] && bad "$stack: a refused import wrote files" "$(ls "$run/tree")"
    continue
  fi
  imported=$((imported + 1))
  grep -q ': warning: ' <<<"$out" || clean_stacks+=("$stack")
  ok "$stack: imported ($(ls "$run/tree" | wc -l) documents)"
  grep ': warning: ' <<<"$out" | sed 's/^/       /'

  # Images: the stand-in under every name; build services under compose's name.
  builds=()
  while read -r kind what; do
    if [[ "$kind" == image ]]; then
      tag "$what" || continue
    else
      builds+=("$what")
      tag "${cp_}_$what"
    fi
  done < <(python3 "$helper" images "$run/stack/$name")

  # docker-compose first: its containers' env gives the secret values.
  echo "$cp_" >"$run/cproject"
  echo "$name" >"$run/cfile"
  # The files publish fixed host ports (80, 3000, ...): one the engine has not
  # released yet, or that another test holds for a moment, gets one retry.
  up() { (cd "$run/stack" && timeout 300 docker-compose -p "$cp_" -f "$name" up -d --no-build 2>&1); }
  cout="$(up)" || { grep -q 'port is already allocated' <<<"$cout" &&
    (cd "$run/stack" && docker-compose -p "$cp_" -f "$name" down -v >/dev/null 2>&1; sleep 10) &&
    cout="$(up)"; }
  if [[ $? -ne 0 ]]; then
    bad "$stack: docker-compose up" "$cout"
    (cd "$run/stack" && docker-compose -p "$cp_" -f "$name" down -v >/dev/null 2>&1)
    continue
  fi
  python3 "$helper" snapshot compose "$cp_" "$run/compose.json"
  (cd "$run/stack" && docker-compose -p "$cp_" -f "$name" down -v >/dev/null 2>&1)

  skipped="$(python3 "$helper" debuild "$run/tree" "$standin" | paste -sd, -)"
  [[ -n "$skipped" ]] && echo "       build services run the stand-in (contexts not copied): $skipped"
  COMPOSE_FILE_NAME="$name" python3 "$helper" secrets "$run/tree" "$run/compose.json" "$run/stack" "$run/secrets"
  allow=()
  while read -r path; do allow+=(--allow-bind "$path"); done < <(grep -o -- '--allow-bind [^ ]*' <<<"$out" | cut -d' ' -f2)
  if ! aout="$(timeout 600 "$RECONCILE" --state "$run/state" --secrets "$run/secrets" "${allow[@]}" \
    apply "$run/tree" --auto-approve --no-color 2>&1)"; then
    bad "$stack: reconcile apply" "$aout"
    "$RECONCILE" --state "$run/state" --secrets "$run/secrets" "${allow[@]}" destroy "$run/tree" \
      --auto-approve --no-color >/dev/null 2>&1
    continue
  fi
  applied=$((applied + 1))
  python3 "$helper" snapshot reconcile "$run/tree" "$run/reconcile.json"
  if grep -rqF -- "$(cat "$run/secrets/"* 2>/dev/null | head -c 12)" "$run/tree" 2>/dev/null &&
    [[ -n "$(ls "$run/secrets" 2>/dev/null)" ]]; then
    bad "$stack: a secret value is in the written documents"
  fi
  if cmp="$(python3 "$helper" compare "$run/compose.json" "$run/reconcile.json" "$cp_" "$rp" "$skipped")"; then
    ok "$stack: containers match docker-compose's, field by field"
    sed 's/^/       /' <<<"$cmp"
  else
    bad "$stack: containers differ from docker-compose's" "$cmp"
  fi
  if [[ "$stack" == gitea-postgres ]]; then
    data_test
  else
    "$RECONCILE" --state "$run/state" --secrets "$run/secrets" "${allow[@]}" destroy "$run/tree" \
      --auto-approve --no-color >/dev/null 2>&1 || bad "$stack: destroy"
  fi
done

total=$((${#refused_stacks[@]} + imported))
echo "# $total compose files: $imported imported, ${#refused_stacks[@]} refused (${refused_stacks[*]:-none});" \
  "$applied applied and compared; ${#clean_stacks[@]} imported with no key refused or changed (${clean_stacks[*]:-none})"
echo "# $passed passed, $failed failed"
[[ $failed -eq 0 ]]
