# The Airflow image the compose services run: the official Airflow 3 image plus
# this project's pinned dependencies (dbt, Great Expectations, ...).
FROM apache/airflow:3.3.2-python3.11
COPY requirements.lock /requirements.lock
RUN pip install --no-cache-dir -r /requirements.lock
ENV PYTHONPATH=/opt/airflow/plugins
