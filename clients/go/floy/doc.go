// Package floy is a Go client for floy's HTTP API (`floy serve`, docs/http-api.md).
//
// It declares the types and interfaces of the release system's interface spec
// (shared/interface-spec.md: DeployExecutor, VersionManager, RollbackManager and
// DeployService) with the spec's exact Go names and JSON tags, and implements
// DeployService with Client, which calls a floy server over HTTP(S):
//
//	svc, err := floy.FromEnvironment(floy.WaitForRuns()) // FLOY_URL, FLOY_TOKEN, FLOY_CA_BUNDLE
//	if err != nil {
//		log.Fatal(err)
//	}
//	result, err := svc.ExecuteDeployment(&floy.DeployParams{...})
//
// floy runs deployments and rollbacks asynchronously: the server answers as soon as a
// run has started. With the WaitForRuns option the methods that start a run wait until
// it has ended, so that a sequential program (deploy, then query, then roll back) sees
// each run's outcome. Without it they return at once, and Wait or
// GetDeploymentStatus follow the run.
//
// Every answer other than 2xx is returned as an *APIError (see IsNotFound, IsConflict
// and IsValidation). Only the standard library is used.
package floy
