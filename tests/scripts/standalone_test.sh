#!/usr/bin/env bash
# The repository stands alone: a user clones only it. No tracked file may
# reach outside the repository for documentation or test data (a sibling such as shared/, or
# any other parent folder), and every third-party vector the tests read is
# kept under tests/testdata/vectors with its licence.
set -uo pipefail
: "${SOURCE_DIR:?}"
cd "$SOURCE_DIR"
failed=0
# Paths that climb out of the repository, in docs, build files, tests, code.
hits="$(git ls-files -z |
  xargs -0 grep -nE '\.\./sh[a]red|\$\{PROJECT_SOURCE_DIR\}/\.\.' 2>/dev/null || true)"
if [[ -n "$hits" ]]; then
  echo "FAIL - files reach outside the repository:"; sed 's/^/       /' <<<"$hits"; failed=1
else
  echo "ok   - no file reaches outside the repository"
fi
# Markdown links must resolve inside the repository.
while IFS= read -r md; do
  dir="$(dirname "$md")"
  while IFS= read -r link; do
    target="${link%%#*}"
    [[ -z "$target" || "$target" == http* || "$target" == mailto:* ]] && continue
    resolved="$(realpath -m "$dir/$target")"
    if [[ "$resolved" != "$SOURCE_DIR"/* && "$resolved" != "$SOURCE_DIR" ]] || [[ ! -e "$resolved" ]]; then
      echo "FAIL - $md links to '$link', which is not in the repository"; failed=1
    fi
  done < <(grep -oE '\]\([^)]+\)' "$md" | sed -E 's/^\]\((.*)\)$/\1/')
done < <(git ls-files '*.md')
[[ $failed -eq 0 ]] && echo "ok   - every Markdown link resolves inside the repository"
# Every vector folder carries its licence.
for f in tests/testdata/vectors/README.md tests/testdata/vectors/licenses/moby-api-LICENSE.txt \
         tests/testdata/vectors/licenses/octokit-webhooks-LICENSE.txt; do
  if [[ -f "$f" ]]; then echo "ok   - $f present"; else echo "FAIL - $f missing"; failed=1; fi
done
if [[ $failed -eq 0 ]]; then echo "standalone: 3 passed, 0 failed"; else echo "standalone: failures"; fi
exit $failed
