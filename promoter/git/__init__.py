"""The Git adapter, by concern (each module says why it is cut where it is):

- `objects`: git's objects read and written in process (trees, commits, the names an entry may carry);
- `clone`: the persistent working clone of one remote, its fetches, reads at a commit, pushes and
  signed commits; `auth_env` for credentials;
- `rules`: the trusted rules revision and the signature checks it rests on;
- `reading`: main resolved for a request, environments, apps, holds, files and policies;
- `provenance`: an app's history, the people on a promoted range, what drift compares with;
- `change`: a stage's change, judged before it exists, then pushed as one commit;
- `writing`: reverts, a hold's lift, merges of main;
- `ports`: one small Protocol per concern, and `GitRepository`, all of them;
- `facade`: `GitClone`, the composition callers build.

`promoter.gitrepo` re-exports the names callers used before the split.
"""
