// The complete release flow example of the interface spec (shared/interface-spec.md,
// section 6.2), copied verbatim (gofmt-formatted) except for two lines: the dot-import of
// floy.example/client/floy, which declares the unqualified names the example uses, and
// the construction of the service, which builds a floy HTTP client from FLOY_URL,
// FLOY_TOKEN and FLOY_CA_BUNDLE and waits for every run it starts to end (WaitForRuns),
// so that each step sees the outcome of the one before.
//
// tests/integration/test_go_client.py builds and runs it against a real `floy serve`,
// with https://packages.example.com/user-service/ replaced by its local package server.
package main

import (
	"fmt"
	"log"

	. "floy.example/client/floy"
)

func main() {
	// 初始化服务
	floyDeployService := MustFromEnvironment(WaitForRuns())

	// 1. 触发发布
	deployParams := &DeployParams{
		Service:    "user-service",
		Version:    "v1.2.3",
		Instances:  []string{"instance-1", "instance-2"},
		PackageURL: "https://packages.example.com/user-service/v1.2.3.tar.gz",
		DeployID:   "deploy-12345",
		Timeout:    300,
		RetryCount: 3,
	}

	result, err := floyDeployService.ExecuteDeployment(deployParams)
	if err != nil {
		log.Fatalf("发布失败: %v", err)
	}
	fmt.Printf("发布启动成功: %s\n", result.DeployID)

	// 2. 查询服务实例版本
	versions, err := floyDeployService.GetServiceInstanceVersions("user-service")
	if err != nil {
		log.Fatalf("查询版本失败: %v", err)
	}
	fmt.Printf("服务实例版本: %+v\n", versions.VersionSummary)

	// 3. 如果需要，执行回滚操作
	rollbackParams := &BatchRollbackParams{
		Service:       "user-service",
		TargetVersion: "v1.2.2",
		PackageURL:    "https://packages.example.com/user-service/v1.2.2.tar.gz",
		Instances:     []string{"instance-1", "instance-2"},
	}

	rollbackResult, err := floyDeployService.RollbackBatch(rollbackParams)
	if err != nil {
		log.Fatalf("回滚失败: %v", err)
	}
	fmt.Printf("回滚启动成功: %s\n", rollbackResult.RollbackID)
}
