// `reconcile approve PLAN_ID`: approves a plan the controller published for
// approval (reconcile/approval.h, README "Approvals").
//
//   local   (default) the approval record is written into the state folder
//           (--state, default <source>/.reconcile; for a controller
//           following several environments the plan is looked for in
//           <state>/environments/*/ too); the controller picks it up at its
//           next ref check. Needs read access to the folder's approval key.
//   remote  with --controller URL --token-file FILE: POST
//           URL/api/v1/plans/PLAN_ID/approve with the approval token; the
//           controller applies the plan at once.
// Exit 0 approved; 1 unknown id, a superseded, stale or applied plan, a
// tampered one, or an error (the message says which).
#pragma once

#include <string>

#include "session.h"

namespace reconcile::cli {

struct ApproveFlags {
  std::string id;
  std::string controller;  // base URL of the controller's listener
  std::string token_file;  // the approval token (--approval-token-file of the controller)
  std::string by;          // who approves; default user@host
};

int CmdApprove(const GlobalOptions& g, const ApproveFlags& flags);

}  // namespace reconcile::cli
