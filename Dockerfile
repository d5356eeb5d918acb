FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
# collectstatic reads no database; the URL only keeps settings from starting the embedded one.
RUN SECRET_KEY=build EMAIL_URL=dummymail:// DATABASE_URL=postgres://build@localhost/build python manage.py collectstatic --noinput
RUN useradd --create-home pov && chown -R pov /app
USER pov
EXPOSE 8000
