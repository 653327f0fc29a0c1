"""Submit one training job with the SageMaker Python SDK, as a user would: ModelTrainer with the
image and role, the default bucket for the output, train(wait=False). Timed by bench.py as a
whole process (import included).

argv: IMAGE ROLE_ARN BASE_NAME TRAIN_URI VALIDATION_URI"""

import sys

from sagemaker.core.helper import session_helper
from sagemaker.train import ModelTrainer
from sagemaker.train.configs import Compute, InputData, StoppingCondition

# The SDK sends sts:GetCallerIdentity (for the default bucket's name) to the regional STS
# endpoint by name, ignoring AWS_ENDPOINT_URL; let it follow AWS_ENDPOINT_URL to the emulator
# like every other call. The SDK still does all of its own work.
session_helper.sts_regional_endpoint = lambda region: None

image, role, base, train, validation = sys.argv[1:6]
trainer = ModelTrainer(
    training_image=image,
    role=role,
    base_job_name=base,
    compute=Compute(instance_type="ml.g5.xlarge", instance_count=1, volume_size_in_gb=30),
    stopping_condition=StoppingCondition(max_runtime_in_seconds=86400),
    hyperparameters={"epochs": "50"},
    input_data_config=[
        InputData(channel_name="train", data_source=train),
        InputData(channel_name="validation", data_source=validation),
    ],
)
trainer.train(wait=False, logs=False)
print(trainer._latest_training_job.training_job_name)
