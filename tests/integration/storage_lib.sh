# SPDX-License-Identifier: Apache-2.0
# The storage of the "scale" variant of the integration tests (BERTH_TEST_STORAGE=s3pg): a fresh
# PostgreSQL database and a fresh key prefix in the RGW bucket of the engines CTest started
# ($BERTH_ENGINES_DIR/{rgw,pg}/env), given to berth serve through the BERTH_* environment
# settings, so the tests' own options and configuration files stay as they are.

# engine_env ENGINE KEY: a value from the engine's env file
engine_env() {
    sed -n "s/^$2=//p" "$BERTH_ENGINES_DIR/$1/env" | tail -n 1
}

# scale_storage_env: export the settings of a new, empty S3 + PostgreSQL storage; the S3 engine
# is $BERTH_TEST_S3_ENGINE (rgw by default; swift for the scale-swift/ tests)
scale_storage_env() {
    local db url s3=${BERTH_TEST_S3_ENGINE:-rgw}
    db="t_$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')"
    url=$(engine_env pg BERTH_TEST_DATABASE_URL)
    psql -q "$url" -c "CREATE DATABASE $db" >/dev/null || return 1
    export BERTH_DATABASE_URL="${url%/*}/$db"
    BERTH_STORAGE_S3_ENDPOINT=$(engine_env "$s3" BERTH_TEST_S3_ENDPOINT)
    BERTH_STORAGE_S3_BUCKET=$(engine_env "$s3" BERTH_TEST_S3_BUCKET)
    BERTH_STORAGE_S3_REGION=$(engine_env "$s3" BERTH_TEST_S3_REGION)
    AWS_ACCESS_KEY_ID=$(engine_env "$s3" AWS_ACCESS_KEY_ID)
    AWS_SECRET_ACCESS_KEY=$(engine_env "$s3" AWS_SECRET_ACCESS_KEY)
    export BERTH_STORAGE_S3_ENDPOINT BERTH_STORAGE_S3_BUCKET BERTH_STORAGE_S3_REGION
    export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
    export BERTH_STORAGE_S3_PREFIX="$db/"
}
