// The YAML loader (loader.h) on one manifest file of arbitrary bytes: the
// whole path a commit's file takes (size, NUL bytes, UTF-8, YAML limits,
// decoding, cross-document checks). Every diagnostic must name the file.
#include <string>
#include <vector>

#include "fuzz_util.h"
#include "reconcile/loader.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace reconcile;
  std::vector<TreeFile> files;
  files.push_back(TreeFile{"agents/fuzz.yaml", std::string(fuzz::Bytes(data, size)), 0});
  FolderSet tree;
  tree.AddFolder("agents");
  LoadResult result = LoadFiles(std::move(files), tree);
  for (const Diagnostic& d : result.diagnostics.items()) {
    fuzz::Check(d.file.empty() || d.file == "agents/fuzz.yaml", "a diagnostic names another file");
  }
  return 0;
}
