package floy

// The interfaces of the interface spec (shared/interface-spec.md sections 2.1, 3.1, 4.1
// and 5), unchanged. Client implements DeployService over floy's HTTP API.

// DeployExecutor is the spec's 发布执行接口: it starts, follows and cancels deployments.
type DeployExecutor interface {
	ExecuteDeployment(params *DeployParams) (*DeployResult, error)
	GetDeploymentStatus(deployID string) (*DeployStatus, error)
	CancelDeployment(deployID string) (*CancelResult, error)
}

// VersionManager is the spec's 版本管理接口: what each instance of a service runs.
type VersionManager interface {
	GetServiceInstanceVersions(serviceName string) (*ServiceVersions, error)
	GetServiceInstances(params *InstanceQueryParams) (*ServiceInstances, error)
}

// RollbackManager is the spec's 回滚管理接口: rollbacks of one or several instances.
type RollbackManager interface {
	RollbackInstance(params *InstanceRollbackParams) (*RollbackResult, error)
	RollbackBatch(params *BatchRollbackParams) (*BatchRollbackResult, error)
}

// DeployService is the spec's 统一服务接口, all three interfaces together.
type DeployService interface {
	DeployExecutor
	VersionManager
	RollbackManager
}
