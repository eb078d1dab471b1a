"""How the request path calls AWS services (Secrets Manager, AppConfig): short timeouts and one retry, so a
slow endpoint costs a request about a second, never the Lambda's whole timeout.

Imported lazily by the code that makes such calls: botocore's config is not needed to start a function.
"""

from botocore.config import Config

REQUEST_PATH_CALLS = Config(connect_timeout=1, read_timeout=1, retries={"max_attempts": 2})
